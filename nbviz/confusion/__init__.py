"""Live confusion matrix: a headless counting core and its widget."""

from .core import ConfusionCounter, accuracy, per_class_metrics
from .widget import ConfusionMatrix

__all__ = ["ConfusionCounter", "ConfusionMatrix", "accuracy", "per_class_metrics"]
