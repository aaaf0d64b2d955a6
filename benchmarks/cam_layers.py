"""Grad-CAM at every conv layer: nbviz.cam.compute against Captum and pytorch-grad-cam.

A ResNet-50-style network (tests/models.py, 25.6 M parameters), one 224x224
image, the 53 ``nn.Conv2d`` layers, the predicted class. nbviz computes all 53
maps from one forward and one backward; Captum's ``LayerGradCam`` and
pytorch-grad-cam's ``GradCAM`` take one layer per call, so they run in a loop
over the same layers. A plain forward+backward with parameter gradients (one
training step without the optimizer) is the yardstick: the goal is all 53
layers in at most that time. One process, contenders alternated each round (the
order rotating), median of the rounds. Before timing, the maps are checked:
nbviz's must equal Captum's at every layer, and pytorch-grad-cam's (min-max
scaled and resized to the image) must correlate with nbviz's upsampled ones.

A second table: the memory of the ``nbviz.GradCAM`` explorer's computation for
16 images (methods gradcam, gradcam++, layercam, saliency; all default layers;
4 targets an image: top 3 + true label), each in its own subprocess, and the
bytes of uint8 maps the widget would send to the browser.

pytorch-grad-cam (PyPI ``grad-cam``) declares torchvision, which has no build
for this torch; it is installed without dependencies and, where torchvision is
missing, gets a stand-in module (see ``load_pytorch_grad_cam``)::

    pip install --no-deps grad-cam==1.5.7 ttach opencv-python-headless

    python -m benchmarks.cam_layers          # tables for docs/benchmarks.md (several minutes)
    python -m benchmarks.cam_layers --quick  # smaller model, one round
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import types

import numpy as np
import torch
from torch import nn

import nbviz
from tests.models import resnet50

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "saliency")  # the explorer's default
CHEAP = ("forward+backward", "nbviz")  # fractions of a second: timed in pairs
PAIRS = 5


def load_pytorch_grad_cam():
    """(GradCAM, ClassifierOutputTarget) from pytorch-grad-cam, or the reason it can't run."""
    stubs: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("torchvision") is None:
        # pytorch-grad-cam imports torchvision at import time only for names GradCAM never
        # uses (`Compose, Normalize, ToTensor` in utils/image.py, `resize` in sess.py for
        # SESS, `torchvision.ops` in a detection target), and torchvision has no build for
        # this torch. A stand-in lets it import; the names raise if anything calls them.
        def unavailable(*args, **kwargs):
            raise RuntimeError("torchvision stand-in: torchvision is not installed")

        tv = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")
        for name in ("Compose", "Normalize", "ToTensor"):
            setattr(transforms, name, unavailable)
        functional.resize = unavailable
        transforms.functional = functional
        tv.transforms = transforms
        stubs = {m.__name__: m for m in (tv, transforms, functional)}
        sys.modules.update(stubs)
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except Exception as e:  # not installed, or a new version imports more of torchvision
        return f"{type(e).__name__}: {e}"
    finally:
        for name in stubs:  # nothing else should mistake the stand-in for torchvision
            del sys.modules[name]
    return GradCAM, ClassifierOutputTarget


def setup(quick: bool):
    g = torch.Generator().manual_seed(0)
    if quick:
        name, model, size = "ResNet-50-style (width 16, 64x64)", resnet50(10, 16), 64
    else:
        name, model, size = "ResNet-50 (224x224)", resnet50(1000, 64), 224
    x = torch.randn(1, 3, size, size, generator=g)
    return name, model.eval(), x


def contenders(model, x, convs: dict[str, nn.Module], pgc):
    from captum.attr import LayerGradCam

    with torch.no_grad():
        t = int(model(x).argmax(1))
    paths, modules = list(convs), list(convs.values())

    def forward_backward():
        model.zero_grad(set_to_none=True)
        model(x)[0, t].backward()

    def captum():
        # detached: Captum's maps keep their forward's autograd graph alive otherwise (about
        # 55 MB each here, 2.9 GB for the 53), which a careful user avoids, and so do we
        return [
            LayerGradCam(model, m).attribute(x, target=t, relu_attributions=True).detach()
            for m in modules
        ]

    fns = {
        "forward+backward": forward_backward,
        "nbviz": lambda: nbviz.cam.compute(model, x, layers=paths),
        "Captum": captum,
    }
    if not isinstance(pgc, str):
        GradCAM, ClassifierOutputTarget = pgc

        def pytorch_grad_cam():
            maps = []
            for m in modules:
                with GradCAM(model=model, target_layers=[m]) as cam:  # `with` removes its hooks
                    maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(t)]))
            return maps

        fns["pytorch-grad-cam"] = pytorch_grad_cam
    return t, fns


def check(res, captum_maps, pgc_maps) -> None:
    """nbviz's raw maps against Captum's (equal) and pytorch-grad-cam's (correlated)."""
    worst = 0.0
    for i, layer in enumerate(res.layers):
        ours, theirs = res.raw(layer)[0], captum_maps[i][0, 0]
        peak = float(theirs.abs().max())
        ok = ours.shape == theirs.shape and torch.allclose(
            ours, theirs, rtol=1e-4, atol=1e-5 * max(peak, 1e-30)
        )
        if not ok:
            sys.exit(f"FAIL: nbviz and Captum disagree at {layer}")
        worst = max(worst, float((ours - theirs).abs().max()) / max(peak, 1e-30))
    print(
        f"check: nbviz's maps equal Captum's LayerGradCam at all {len(res.layers)} layers "
        f"(allclose; max |difference| = {worst:.1e} of the map's peak)"
    )
    if pgc_maps is None:
        return
    shape = pgc_maps[0].shape
    corr = []
    for i, layer in enumerate(res.layers):
        ours = res.maps(layer)[0].flatten().numpy()
        theirs = np.asarray(pgc_maps[i][0]).flatten()
        if ours.std() > 0 and theirs.std() > 0:  # an all-zero map has no correlation
            corr.append(float(np.corrcoef(ours, theirs)[0, 1]))
    print(
        f"check: pytorch-grad-cam's maps are {shape} (min-max scaled, resized to the image); "
        f"Pearson correlation with nbviz's upsampled maps over the {len(corr)} layers with a "
        f"non-zero map: min {min(corr):.4f}, median {statistics.median(corr):.4f}"
    )
    if min(corr) < 0.99:
        sys.exit("FAIL: pytorch-grad-cam's maps do not match nbviz's")


def timing(quick: bool, rounds: int) -> None:
    name, model, x = setup(quick)
    convs = {p: m for p, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pgc = load_pytorch_grad_cam()
    if isinstance(pgc, str):
        print(f"pytorch-grad-cam: n/a ({pgc})")
    t, fns = contenders(model, x, convs, pgc)
    out = {k: fn() for k, fn in fns.items()}  # warm-up; its maps are checked
    check(out["nbviz"], out["Captum"], out.get("pytorch-grad-cam"))
    del out
    times: dict[str, list[float]] = {k: [] for k in fns}
    # The two short contenders (a fraction of a second) run as PAIRS alternated pairs a
    # round, so that a burst of load elsewhere cannot decide their ratio; the loops (many
    # seconds each) run once a round. The order of the steps rotates every round.
    steps = [list(CHEAP) * PAIRS] + [[k] for k in fns if k not in CHEAP]
    for r in range(rounds):
        for step in steps[r % len(steps) :] + steps[: r % len(steps)]:
            for k in step:
                t0 = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(convs)
    pgc_t = med.get("pytorch-grad-cam")
    pgc_s = "n/a" if pgc_t is None else f"{pgc_t:.2f} s"
    pgc_x = "n/a" if pgc_t is None else f"**{pgc_t / med['nbviz']:.0f}x**"
    print(
        f"\nmedian of {rounds} rounds, contenders alternated ({PAIRS} forward+backward / nbviz "
        f"pairs a round); target: the predicted class ({t})\n"
    )
    print(
        f"| model | forward+backward | nbviz.cam ({n} layers) | Captum LayerGradCam x{n} | "
        f"pytorch-grad-cam x{n} | nbviz / fwd+bwd | Captum / nbviz | pytorch-grad-cam / nbviz |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {name} | {med['forward+backward']:.2f} s | {med['nbviz']:.2f} s | "
        f"{med['Captum']:.2f} s | {pgc_s} | {med['nbviz'] / med['forward+backward']:.2f} | "
        f"**{med['Captum'] / med['nbviz']:.0f}x** | {pgc_x} |"
    )
    spread = ", ".join(f"{k} {min(v):.2f}-{max(v):.2f} s" for k, v in times.items())
    print(f"\nrange over the rounds: {spread}")
    print(
        "goal: nbviz / fwd+bwd <= 1 (all layers in one training step's time), Captum / nbviz >= 25x"
    )


# --- memory of the explorer, one subprocess per row ----------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+)", f.read(), re.M).group(1))


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(model_key: str, methods: list[str]) -> None:
    """Run in a subprocess: build the model and images, then compute; print a JSON line."""
    g = torch.Generator().manual_seed(0)
    if model_key == "small":
        from nbviz.datasets import shapes
        from nbviz.examples import SmallCNN

        data = shapes(16)
        model, x, labels = SmallCNN(num_classes=6), data.images, data.labels
    else:
        quick = model_key == "resnet-quick"
        size, model = (64, resnet50(10, 16)) if quick else (224, resnet50(1000, 64))
        x = torch.randn(16, 3, size, size, generator=g)
        k = model.fc.out_features
        labels = torch.randint(0, k, (16,), generator=g)
    model.eval()
    with torch.no_grad():  # the explorer's targets: top 3 predictions, then the true label
        targets = torch.cat([model(x).topk(3, dim=1).indices, labels[:, None]], dim=1)
    gc.collect()
    # ru_maxrss is useless here: Linux carries the parent's peak into a child at exec, and
    # the parent holds a ResNet-50 and Captum's results. Where /proc allows, the peak mark
    # is reset to the current RSS and read back as VmHWM (what ru_maxrss reports).
    fresh = _reset_peak()
    before = _status_kib("VmRSS") if fresh else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sent, layers, results = 0, 0, []
    t0 = time.perf_counter()
    for method in methods:
        res = nbviz.cam.compute(model, x, targets=targets, method=method)
        results.append(res)  # the explorer keeps every method's maps
        T = res.targets.shape[1]
        sent += sum(res.raw(layer).numel() * T for layer in res.layers)  # uint8: 1 byte a value
        layers += len(res.layers)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM") if fresh else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"peak_kib": peak - before, "sent": sent, "layers": layers, "seconds": seconds})
    )


def memory(quick: bool) -> None:
    models = [("small", "SmallCNN(6), 64x64, shapes(16)")]
    if quick:
        models.append(("resnet-quick", "ResNet-50-style (width 16), 64x64, 16 random images"))
    else:
        models.append(("resnet", "ResNet-50, 224x224, 16 random images"))
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    print(
        "\nExplorer memory, 16 images, all default layers, 4 targets an image (top 3 + label); "
        "each row a fresh process: peak RSS during compute() minus RSS just before it "
        "(model, images built). Sent: uint8 maps for the browser, sum of N*T*h*w.\n"
    )
    print("| model | method | layers | time (one run) | peak RSS added | maps sent |")
    print("|---|---|---|---|---|---|")
    for key, label in models:
        for methods in [[m] for m in CAM_METHODS] + [list(CAM_METHODS)]:
            cmd = [sys.executable, __file__, "--memory-child", key, ",".join(methods)]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode:
                sys.exit(f"memory child failed:\n{p.stderr}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            what = "all four (explorer)" if len(methods) > 1 else methods[0]
            print(
                f"| {label} | {what} | {r['layers']} | {r['seconds']:.1f} s | "
                f"{r['peak_kib'] / 1024:.0f} MiB | {r['sent']:,} B ({r['sent'] / 2**20:.1f} MiB) |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1].split(","))
        return
    rounds = 1 if args.quick else 5
    torch.manual_seed(0)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min)"
    )
    timing(args.quick, rounds)
    memory(args.quick)


if __name__ == "__main__":
    main()
