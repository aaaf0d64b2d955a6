"""Layer embeddings of a data set, their PCA and neighbourhoods: the headless core of
the projector.

>>> from nbviz.projector import embed, neighbours, pca
>>> emb = embed(model, images)  # doctest: +SKIP
>>> coords = pca(emb.vectors).coords  # doctest: +SKIP
>>> near = neighbours(emb.vectors, k=10)  # doctest: +SKIP
"""

from .core import MAX_BYTES, Embedded, default_layer, embed, pool_output
from .geometry import PCA, neighbours, pca, procrustes_align
from .widget import Embeddings

__all__ = [
    "MAX_BYTES",
    "PCA",
    "Embedded",
    "Embeddings",
    "default_layer",
    "embed",
    "neighbours",
    "pca",
    "pool_output",
    "procrustes_align",
]
