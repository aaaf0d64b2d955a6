"""Grad-CAM at every block of a ViT-B/16: nbviz.cam.compute against Captum looped.

Hugging Face's ``ViTForImageClassification`` with its default configuration (ViT-B/16:
224x224, 16x16 patches, 12 blocks of width 768, 86 M parameters; random weights, no
download) and the timm-style ViT-B/16 of tests/models.py; one image, the predicted
class. nbviz explains all 12 blocks' outputs (the patch tokens on their 14x14 grid) from
one forward and one backward. Captum's ``LayerGradCam`` takes one layer per call and
reads maps as ``(N, C, h, w)``: it runs on a copy of the model whose blocks pass their
tokens through that grid on the way out (a reshape, no computation), in a loop over the
12 blocks. A plain forward+backward with parameter gradients (one training step
without the optimizer) is the yardstick. Goals: nbviz in at most one forward+backward,
and Captum looped at least half a forward+backward per block slower than nbviz. One
process, contenders alternated each round, medians. Before timing, nbviz's maps are
checked against Captum's at every block::

    python -m benchmarks.cam_vit          # the table for docs/benchmarks.md (minutes)
    python -m benchmarks.cam_vit --quick  # small ViTs, one round
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
from torch import nn

import nbviz

PAIRS = 5  # forward+backward / nbviz pairs a round


class _Merge(nn.Module):
    def forward(self, extras: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return torch.cat([extras, grid.flatten(2).transpose(1, 2)], dim=1)


class _OnGrid(nn.Module):
    """A block whose output tokens pass through their (N, C, h, w) grid: Captum explains
    the grid as ``_Merge``'s second input (``attribute_to_layer_input=True``)."""

    def __init__(self, block: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.block, self.size, self.merge = block, size, _Merge()

    def forward(self, *args, **kwargs):
        out = self.block(*args, **kwargs)
        t = out[0] if isinstance(out, tuple) else out
        n, _, c = t.shape
        grid = t[:, 1:].transpose(1, 2).reshape(n, c, *self.size)
        merged = self.merge(t[:, :1], grid)
        return (merged, *out[1:]) if isinstance(out, tuple) else merged


def models(quick: bool):
    from transformers import ViTConfig, ViTForImageClassification

    from tests.models import vit

    torch.manual_seed(0)
    if quick:
        cfg = ViTConfig(image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=128)  # fmt: skip
        yield "HF ViT (small, 64x64)", ViTForImageClassification(cfg), "vit.layers", 64
        yield "timm-style ViT (small, 64x64)", vit(64, 16, 64, 4, 4, 128, 1000), "blocks", 64
        return
    cfg = ViTConfig(num_labels=1000)  # the defaults are ViT-B/16
    yield "Hugging Face ViT-B/16 (224x224)", ViTForImageClassification(cfg), "vit.layers", 224
    yield "timm-style ViT-B/16 (224x224)", vit(224, 16, 768, 12, 12, 3072, 1000), "blocks", 224


def logits_of(out):
    return out.logits if hasattr(out, "logits") else out


def contenders(model, blocks: str, x: torch.Tensor, grid: tuple[int, int]):
    from captum.attr import LayerGradCam

    with torch.no_grad():
        t = int(logits_of(model(x)).argmax(1))
    twin = copy.deepcopy(model)
    holder = twin.get_submodule(blocks)
    for i in range(len(holder)):
        holder[i] = _OnGrid(holder[i], grid)
    merges = [holder[i].merge for i in range(len(holder))]

    def forward_backward():
        model.zero_grad(set_to_none=True)
        logits_of(model(x))[0, t].backward()

    def captum():
        return [
            LayerGradCam(lambda inp: logits_of(twin(inp)), m)
            .attribute(x, target=t, relu_attributions=True, attribute_to_layer_input=True)[1]
            .detach()
            for m in merges
        ]

    fns = {
        "forward+backward": forward_backward,
        "nbviz": lambda: nbviz.cam.compute(model, x, targets=t),
        "Captum": captum,
    }
    return t, fns


def check(res, captum_maps, blocks: str) -> None:
    worst = 0.0
    assert res.layers == [f"{blocks}.{i}" for i in range(len(captum_maps))], res.layers
    for layer, theirs in zip(res.layers, captum_maps, strict=True):
        ours, theirs = res.raw(layer)[0], theirs[0, 0]
        peak = float(theirs.abs().max())
        if ours.shape != theirs.shape or not torch.allclose(
            ours, theirs, rtol=1e-4, atol=1e-5 * max(peak, 1e-30)
        ):
            sys.exit(f"FAIL: nbviz and Captum disagree at {layer}")
        worst = max(worst, float((ours - theirs).abs().max()) / max(peak, 1e-30))
    print(
        f"check: nbviz's maps equal Captum's LayerGradCam at all {len(res.layers)} blocks "
        f"(max |difference| = {worst:.1e} of the map's peak; the last block's map is empty in "
        f"both: the head reads only the class token after it)"
    )


def timing(name, model, blocks, size, rounds: int) -> dict:
    model.eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    grid = (size // 16, size // 16)
    t, fns = contenders(model, blocks, x, grid)
    out = {k: fn() for k, fn in fns.items()}  # warm-up; its maps are checked
    check(out["nbviz"], out["Captum"], blocks)
    del out
    times: dict[str, list[float]] = {k: [] for k in fns}
    steps = [["forward+backward", "nbviz"] * PAIRS, ["Captum"]]
    for r in range(rounds):
        for step in steps[r % 2 :] + steps[: r % 2]:
            for k in step:
                t0 = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(model.get_submodule(blocks))
    fb, ours, theirs = med["forward+backward"], med["nbviz"], med["Captum"]
    spread = ", ".join(f"{k} {min(v):.2f}-{max(v):.2f} s" for k, v in times.items())
    print(f"{name}: range over the rounds: {spread}")
    return {
        "name": name,
        "blocks": n,
        "fb": fb,
        "nbviz": ours,
        "captum": theirs,
        "per_block": (theirs - ours) / n / fb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 1 if args.quick else 5
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min)"
    )
    rows = [timing(*spec, rounds) for spec in models(args.quick)]
    print(
        f"\nmedian of {rounds} rounds ({PAIRS} forward+backward / nbviz pairs a round, Captum "
        "once); one image, the predicted class\n"
    )
    print(
        "| model | forward+backward | nbviz.cam (all blocks) | Captum `LayerGradCam` looped | "
        "nbviz / fwd+bwd | Captum / nbviz | (Captum - nbviz) per block, in fwd+bwd |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']}, {r['blocks']} blocks | {r['fb']:.2f} s | {r['nbviz']:.2f} s | "
            f"{r['captum']:.2f} s | {r['nbviz'] / r['fb']:.2f} | **{r['captum'] / r['nbviz']:.1f}x**"
            f" | {r['per_block']:.2f} |"
        )
    print(
        "\ngoals: nbviz / fwd+bwd <= 1; Captum at least 0.5 forward+backward per block slower "
        "than nbviz"
    )


if __name__ == "__main__":
    main()
