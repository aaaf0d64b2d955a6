"""Small generated data sets for demos and tests (nothing is downloaded)."""

from .shapes import SHAPE_CLASSES, ShapesData, shapes

__all__ = ["SHAPE_CLASSES", "ShapesData", "shapes"]
