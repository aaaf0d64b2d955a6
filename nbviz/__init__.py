"""nbviz: see inside a live PyTorch model from a notebook.

>>> import nbviz
>>> cm = nbviz.ConfusionMatrix(classes=["cat", "dog"])  # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

from . import cam, datasets
from .cam import GradCAM
from .confusion import ConfusionMatrix
from .graph import Graph, ModelGraph
from .graph.trace import trace
from .monitor import Monitor, watch
from .projector import Embeddings
from .runs.follow import Follower, follow
from .runs.widget import FolderFollower

try:
    __version__ = version("nbviz")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfusionMatrix",
    "Embeddings",
    "FolderFollower",
    "Follower",
    "GradCAM",
    "Graph",
    "ModelGraph",
    "Monitor",
    "cam",
    "datasets",
    "follow",
    "trace",
    "watch",
    "__version__",
]
