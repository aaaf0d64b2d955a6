"""Class activation maps: every layer in one pass, scored against human masks.

>>> import nbviz
>>> res = nbviz.cam.compute(model, images, targets="topk:3")  # doctest: +SKIP
>>> nbviz.cam.agreement(res, masks)  # doctest: +SKIP
"""

from .core import METHODS, Agreement, CamResult, agreement, compute
from .widget import GradCAM

__all__ = ["METHODS", "Agreement", "CamResult", "GradCAM", "agreement", "compute"]
