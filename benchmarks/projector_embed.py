"""Embedding a data set at a layer, nbviz against the loop a user would write.

10,000 shapes images (64 x 64) through the demo CNN (``SmallCNN``, untrained) at its
penultimate layer (the input of ``classifier.fc``). The plain loop: a forward hook on
the layer appending ``.detach()`` outputs batch by batch in eval mode under
``torch.no_grad()``, then ``torch.cat``, then pooled. Both give the same vectors
(checked). Then the same 10,000 vectors' PCA and 10 nearest neighbours, with
scikit-learn's ``PCA`` and ``NearestNeighbors`` (brute force) as the peers. One process,
contenders alternated each round, medians.

    python -m benchmarks.projector_embed            # table for docs
    python -m benchmarks.projector_embed --quick    # a fast smoke run
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from nbviz.datasets import shapes
from nbviz.examples import SmallCNN
from nbviz.projector import embed, neighbours, pca


def plain_loop(model, images, layer, batch_size):
    """What a user writes without nbviz."""
    feats = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: feats.append(o.detach())
    )
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                model(images[i : i + batch_size])
    finally:
        handle.remove()
    v = torch.cat(feats)
    return v.flatten(2).mean(2) if v.ndim > 2 else v


def sklearn_pca(x):
    from sklearn.decomposition import PCA

    return PCA(2).fit_transform(x)


def sklearn_neighbours(x, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    return nn.kneighbors(x, return_distance=False)[:, 1:]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    rounds = 2 if args.quick else 5
    n = min(args.n, 2_000) if args.quick else args.n
    data = shapes(n, size=64)
    torch.manual_seed(0)
    model = SmallCNN(num_classes=len(data.classes))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{n:,} shapes images 64 x 64, SmallCNN, batch {args.batch}; median of {rounds} rounds\n")

    ours = embed(model, data.images, batch_size=args.batch)
    ref = plain_loop(model, data.images, ours.layer, args.batch)
    torch.testing.assert_close(ours.vectors, ref)  # the same vectors
    x = ours.vectors.numpy()

    contenders = {
        "embed": {
            "nbviz": lambda: embed(model, data.images, batch_size=args.batch),
            "plain loop": lambda: plain_loop(model, data.images, ours.layer, args.batch),
        },
        "PCA (2 dims)": {"nbviz": lambda: pca(x), "sklearn": lambda: sklearn_pca(x)},
        "10 neighbours (cosine)": {
            "nbviz": lambda: neighbours(x, 10),
            "sklearn": lambda: sklearn_neighbours(x, 10),
        },
    }
    p, s = pca(x), sklearn_pca(x)
    np.testing.assert_allclose(np.abs(p.coords), np.abs(s), atol=1e-3 * np.abs(s).max())
    print(f"| work ({ours.layer!r}, {ours.dim} dims) | nbviz | peer | peer / nbviz |")
    print("|---|---|---|---|")
    for work, fns in contenders.items():
        samples: dict[str, list[float]] = {name: [] for name in fns}
        for r in range(rounds):
            order = list(fns) if r % 2 == 0 else list(fns)[::-1]
            for name in order:
                samples[name].append(timed(fns[name])[0])
        (_, ours_s), (peer, peer_s) = [(k, statistics.median(v)) for k, v in samples.items()]
        print(f"| {work} | {ours_s:.3f} s | {peer}: {peer_s:.3f} s | {peer_s / ours_s:.2f}x |")


if __name__ == "__main__":
    main()
