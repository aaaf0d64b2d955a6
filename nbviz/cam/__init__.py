"""Class activation maps: every layer in one pass, scored against human masks.

>>> import nbviz
>>> res = nbviz.cam.compute(model, images, targets="topk:3")  # doctest: +SKIP
>>> nbviz.cam.agreement(res, masks)  # doctest: +SKIP
"""

from .agreement import Agreement, agreement
from .core import METHODS, CamResult, compute
from .faithfulness import Faithfulness, faithfulness
from .sanity import Randomization, randomization_check
from .widget import GradCAM

__all__ = [
    "METHODS",
    "Agreement",
    "CamResult",
    "Faithfulness",
    "GradCAM",
    "Randomization",
    "agreement",
    "compute",
    "faithfulness",
    "randomization_check",
]
