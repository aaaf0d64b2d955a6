"""The expandable layer graph: record a forward pass (`trace`) as a `Graph`.

>>> import torch, nbviz
>>> g = nbviz.trace(torch.nn.Linear(3, 2), torch.zeros(1, 3))  # doctest: +SKIP
>>> g.total_params  # doctest: +SKIP
8
"""

from . import trace  # the module (the recorder); its function is nbviz.trace
from .core import Graph
from .widget import ModelGraph

__all__ = ["Graph", "ModelGraph", "trace"]
