"""How fast recorded runs open, and how many bytes they take, beside TensorBoard.

Three figures, each beside TensorBoard's own loader on the same content:

1. **Opening a 100,000-step run with histograms** (goal: under 1 s). A real run: a
   3-layer MLP (32-64-64-10, ReLUs, batch 32, SGD) trained for 100,000 steps under
   `TrainingRecorder(model, probe, logdir=...)` at its defaults (``every=20``,
   ``hist_every=100``, four histogram layers at most: here the three Linear layers, with
   weights, gradients and activations). The recorder's default ``log_every`` is 1 s; this
   loop runs far faster than a real one, so each write is made every 100 steps instead
   (the default's 1 s at 10 ms a step: ``MonitorLog.due`` is replaced on the instance),
   and the writer thread keeps its default 1 s flushes. A run's segment that passes 16 MB
   (``MonitorLog.roll_bytes``) rolls into a checkpoint; the output says whether this one
   did. Timed: ``RecordedRun(path).update()`` + ``snapshot()`` (what ``nbviz.follow``
   does first), against ``EventAccumulator(path, size_guidance={"scalars": 0,
   "histograms": 0}).Reload()`` (TensorBoard's Python loader, keeping everything, as
   nbviz does; also with its default size guidance, which samples what it keeps but reads
   and parses everything) and nbviz's own `TensorBoardRun` on the TensorBoard directory.
   The TensorBoard run is written in the same training loop by a ``SummaryWriter``, with
   what ``benchmarks.run_recording`` gives it: loss and accuracy every step, each layer's
   gradient norm every step (``add_scalar`` per layer), and histograms of the same layers'
   weights and gradients (``add_histogram`` per parameter) every 100 steps. nbviz's run
   also holds update ratios, max gradients, dead units and activation histograms, which
   TensorBoard is not given.
2. **Opening a folder of 200 runs of 10,000 steps** (goal: under 2 s, kernel side). One
   real 10,000-step run is recorded as in (1); the 200 runs are its records re-encoded
   (``nbviz.runs.format``: scan, decode, encode) with each run's scalars (loss,
   accuracy) scaled and noised by a seed of its own, so no two files are alike; every
   other record (gradient rows, histograms, the layer graph) is kept as it is, so each
   run's files hold the full content (1.4 MB) that the folder view passes over. Timed:
   ``FolderFollower(folder)``'s constructor (finds the runs, reads each one's scalars,
   decimates the curves and pushes them to the widget, whose state is serialised; only
   the comm's send is missing outside a kernel), and ``RunFolder(folder).update()``
   alone. Against TensorBoard's ``EventMultiplexer`` (``AddRunsFromDirectory`` +
   ``Reload``, ``size_guidance`` 0 for scalars) on TensorBoard runs of the same curves:
   each run's loss and accuracy, every step, written with ``add_scalar`` (the two curves
   the overview shows; the per-layer gradient norms are left out on both sides, as
   nbviz's folder view does not read them). TensorBoard takes seconds a run, so it loads
   20 runs (and 10, to check the time is linear in the runs) and its figure for 200 is
   extrapolated linearly from 20; the output says so.
3. **Disk bytes per 10,000 steps**: the 10,000-step run of (2), nbviz's run directory
   against TensorBoard's event file of the same content as in (1).

Every time is the median of several cold opens in this process (a new reader each time;
the files in the page cache after a first read), nbviz and TensorBoard alternated.
TensorBoard's Python loader, without TensorFlow installed, checks every record with a
pure-Python CRC-32C (``tensorboard.compat.tensorflow_stub``): most of its time here, and of
`TensorBoardRun`'s, which uses the same checksum. TensorBoard's web app can load runs with
its compiled data server instead; that is not measured here.

Recording the runs takes minutes (the 100,000 steps mostly), so the recordings are kept
in ``benchmarks/.cache/`` (ignored by git), under a key made of the parameters and a hash
of the code that writes them (``MonitorLog``, ``checkpoint``, ``SegmentWriter``,
``encode``, ``TrainingRecorder.__init__``): a change there records them again; after
any other change to what the recorder records, pass ``--rebuild``. The folders of 200
runs are rebuilt from the cached 10,000-step run each time, in a temporary directory
(seconds). The first full run takes about 4 minutes more for the recordings.

    python -m benchmarks.run_reading            # the table in docs/benchmarks.md
    python -m benchmarks.run_reading --quick    # a smoke run: fewer steps and runs
    python -m benchmarks.run_reading --rebuild  # record the cached runs again
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import nbviz
from nbviz.monitor.core import TrainingRecorder
from nbviz.monitor.runlog import MonitorLog, RecordedRun, checkpoint
from nbviz.runs.files import RunReader, SegmentWriter
from nbviz.runs.folder import RunFolder
from nbviz.runs.format import FILE_HEADER, VERSION, check_file_header, encode, file_header, scan
from nbviz.runs.tensorboard import TensorBoardRun
from nbviz.runs.widget import FolderFollower

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
# What decides the recorded bytes: their source is part of the cache's key (the readers'
# is not: a faster reader reads the same recordings).
RECORDING_CODE = [TrainingRecorder.__init__, MonitorLog, checkpoint, SegmentWriter, encode]
WRITE_EVERY = 100  # steps between the recorder's writes: its default 1 s at 10 ms a step
TB_HIST_EVERY = 100  # TensorBoard's histograms: the recorder's default hist_every
KEEP_ALL = {"scalars": 0, "histograms": 0}  # EventAccumulator: every scalar, every histogram
MUX_KEEP_ALL = {"tensors": 0}  # the multiplexer's accumulators hold scalars as tensors

# rounds: of nbviz's opens; tb_rounds: of TensorBoard's opens of the long run (about a
# minute each at 100,000 steps); mux_rounds: of TensorBoard's folder (half as many for the
# check on half the runs).
FULL = {"long": 100_000, "short": 10_000, "runs": 200, "tb_runs": 20}
FULL |= {"rounds": 5, "tb_rounds": 1, "mux_rounds": 2}
QUICK = {"long": 5_000, "short": 2_000, "runs": 20, "tb_runs": 4}
QUICK |= {"rounds": 3, "tb_rounds": 2, "mux_rounds": 2}
CACHE_KEYS = ("long", "short", "tb_runs")  # the parameters the recordings depend on


# --- recording ------------------------------------------------------------------------------


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def record(nb_dir: Path, tb_dir: Path, steps: int, seed: int = 0) -> None:
    """Train the MLP for ``steps`` steps, recorded by nbviz to ``nb_dir`` and by a
    ``SummaryWriter`` to ``tb_dir`` (see the module docstring for what each gets)."""
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(seed)
    model = mlp()
    teacher = torch.randn(32, 10)
    x_all = torch.randn(8192, 32)
    y_all = (x_all @ teacher + 0.5 * torch.randn(8192, 10)).argmax(1)  # learnable, noisy
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    batch = 32
    rec = TrainingRecorder(model, x_all[:8], logdir=nb_dir)
    rec.log.due = lambda: rec.steps % WRITE_EVERY == 0  # a write every 100 steps (see above)
    writer = SummaryWriter(str(tb_dir))
    layers = rec.hist_layers  # the layers nbviz takes histograms of
    by_path = dict(model.named_modules())
    owned = [(n, list(m.parameters(recurse=False))) for n, m in model.named_modules()]
    owned = [(n, ps) for n, ps in owned if ps and n]
    t0 = time.perf_counter()
    for s in range(steps):
        i = (s * batch) % (len(x_all) - batch)
        x, y = x_all[i : i + batch], y_all[i : i + batch]
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        acc = (out.argmax(1) == y).float().mean()
        rec.step(loss=loss, acc=acc)
        writer.add_scalar("loss", loss.item(), s)
        writer.add_scalar("acc", acc.item(), s)
        for name, ps in owned:
            norm = torch.stack([p.grad.norm() for p in ps if p.grad is not None]).norm()
            writer.add_scalar(f"grad_norm/{name}", norm.item(), s)
        if s % TB_HIST_EVERY == 0:
            for path in layers:
                for p_name, p in by_path[path].named_parameters():
                    writer.add_histogram(f"{path}.{p_name}/weights", p.detach(), s)
                    if p.grad is not None:
                        writer.add_histogram(f"{path}.{p_name}/gradients", p.grad, s)
        opt.step()
        if (s + 1) % 10_000 == 0:
            rate = (s + 1) / (time.perf_counter() - t0)
            print(f"  recorded {s + 1:,} of {steps:,} steps ({rate:.0f} steps/s)", flush=True)
    rec.detach()
    writer.close()


def variant_values(k: int, name: str, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Run ``k``'s version of a scalar: scaled by its own factor, with its own noise."""
    scale = 0.6 + 0.8 * ((k * 0.618) % 1.0)
    out = values * scale + rng.normal(0.0, 0.02, len(values))
    return np.clip(out, 0.0, 1.0) if name == "acc" else out


def make_folder(base: Path, out: Path, runs: int) -> None:
    """``runs`` runs under ``out``, each ``base``'s records re-encoded with its scalars
    changed (`variant_values`); the replaced-whole files (``*.nbrec``) copied as they are."""
    reader = RunReader(base, "monitor")
    segments = []
    for path in reader.segments():
        data = path.read_bytes()
        check_file_header(data[: FILE_HEADER.size], str(path))
        records = [r for r, _ in scan(data, FILE_HEADER.size)]
        if any(r.kind == "checkpoint" for r in records):
            raise RuntimeError("the base run rolled: make_folder changes scalars records only")
        segments.append((path.name, records))
    extras = sorted(base.glob("*.nbrec"))
    for k in range(runs):
        rng = np.random.default_rng(1000 + k)
        run = out / f"run{k:03d}"
        run.mkdir(parents=True)
        for name, records in segments:
            parts = [file_header()]
            for r in records:
                if r.kind == "scalars":
                    arrays = dict(r.arrays)
                    arrays["values"] = variant_values(k, r.meta["name"], r.arrays["values"], rng)
                    r = type(r)(r.kind, r.meta, arrays)
                parts.append(encode(r))
            (run / name).write_bytes(b"".join(parts))
        for f in extras:
            shutil.copyfile(f, run / f.name)


def make_tb_folder(nb_folder: Path, out: Path, runs: int) -> None:
    """TensorBoard runs of the same curves as the first ``runs`` nbviz runs of
    ``nb_folder``: their loss and accuracy, every step, with ``add_scalar``."""
    from torch.utils.tensorboard import SummaryWriter

    for k in range(runs):
        snap = _open_nbviz(nb_folder / f"run{k:03d}", scalars_only=True)
        writer = SummaryWriter(str(out / f"run{k:03d}"))
        for name, (steps, values) in snap["scalars"].items():
            for s, v in zip(steps.tolist(), values.tolist(), strict=True):
                writer.add_scalar(name, v, s)
        writer.close()


def cached(params: dict[str, int], rebuild: bool) -> Path:
    """The cache directory of these parameters and this recording code, recorded if it is
    not there yet (or ``rebuild``)."""
    key = {k: params[k] for k in CACHE_KEYS}
    h = hashlib.sha256(json.dumps({**key, "write_every": WRITE_EVERY}).encode())
    h.update(f"format {VERSION}, torch {torch.__version__}".encode())
    for code in RECORDING_CODE:
        h.update(inspect.getsource(code).encode())
    where = CACHE / f"run_reading-{h.hexdigest()[:16]}"
    done = where / "done"
    if done.exists() and not rebuild:
        print(f"recordings: cached in {where.relative_to(REPO)}", flush=True)
        return where
    for stale in CACHE.glob("run_reading-*"):  # these parameters, older recording code
        if (stale / "done").exists() and json.loads((stale / "done").read_text()) == key:
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    t0 = time.perf_counter()
    for part, steps in (("short", params["short"]), ("long", params["long"])):
        print(f"recording the {steps:,}-step run (nbviz and TensorBoard)...", flush=True)
        record(where / part / "nbviz", where / part / "tb", steps)
    print(f"writing {params['tb_runs']} TensorBoard runs of a folder...", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="nbviz-bench-"))
    try:
        make_folder(where / "short" / "nbviz", scratch, params["tb_runs"])
        make_tb_folder(scratch, where / "tb_folder", params["tb_runs"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    done.write_text(json.dumps(key))
    print(f"recorded in {time.perf_counter() - t0:.0f} s, kept in {where.relative_to(REPO)}")
    return where


# --- opening --------------------------------------------------------------------------------


def _open_nbviz(path: Path, scalars_only: bool = False) -> dict[str, Any]:
    run = RecordedRun(path, scalars_only=scalars_only)
    run.update()
    return run.snapshot()


def _open_tb(path: Path, guidance: dict[str, int] | None) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance=guidance)
    acc.Reload()
    return acc


def _open_tbrun(path: Path) -> dict[str, Any]:
    run = TensorBoardRun(path)
    run.update()
    return run.snapshot()


def _open_follower(path: Path) -> float:
    """Seconds for the constructor of `FolderFollower` (it reads the folder and pushes)."""
    t0 = time.perf_counter()
    follower = FolderFollower(path)
    seconds = time.perf_counter() - t0
    follower.close()
    return seconds


def _open_folder(path: Path) -> RunFolder:
    folder = RunFolder(path)
    folder.update()
    return folder


def _multiplexer(path: Path) -> Any:
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    mux = EventMultiplexer(size_guidance=MUX_KEEP_ALL)
    mux.AddRunsFromDirectory(str(path))
    mux.Reload()
    return mux


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    out = fn()
    return out if isinstance(out, float) else time.perf_counter() - t0


def alternate(
    rounds: int, cases: dict[str, tuple[Callable[[], Any], int]], files: list[Path]
) -> dict[str, float]:
    """Median seconds of each case, the cases alternated round by round; a case runs in the
    first ``limit`` rounds only. First the ``files`` are read (into the page cache), and each
    case that runs every round is run once (its first call's imports and caches)."""
    for path in files:
        for f in path.rglob("*"):
            if f.is_file():
                f.read_bytes()
    for fn, limit in cases.values():
        if limit >= rounds:
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, limit = cases[name]
            if r < limit:
                times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(f.stat().st_size for f in path.rglob(pattern) if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="record the cached runs again")
    args = ap.parse_args()
    params = QUICK if args.quick else FULL
    torch.set_num_threads(1)  # the MLP's tiny ops: threads only add contention
    import tensorboard

    print(
        f"nbviz {nbviz.__version__}, torch {torch.__version__}, tensorboard {tensorboard.__version__}"
    )
    where = cached(params, args.rebuild)
    long_nb, long_tb = where / "long" / "nbviz", where / "long" / "tb"
    short_nb, short_tb = where / "short" / "nbviz", where / "short" / "tb"
    rounds, tb_rounds, mux_rounds = params["rounds"], params["tb_rounds"], params["mux_rounds"]
    # TensorBoard's modules imported before any timing (nbviz's are, at the top)
    from tensorboard.backend.event_processing import (  # noqa: F401
        event_accumulator,
        plugin_event_multiplexer,
    )

    notes: list[str] = []

    # 1. one long run
    n_long = params["long"]
    segs = RunReader(long_nb, "monitor").segments()
    kinds = {
        r.kind for p in segs for r, _ in scan(p.read_bytes(), FILE_HEADER.size) if r is not None
    }
    print(f"opening the {n_long:,}-step run...", flush=True)
    one = alternate(
        rounds,
        {
            "nbviz": (lambda: _open_nbviz(long_nb), rounds),
            "tb": (lambda: _open_tb(long_tb, KEEP_ALL), tb_rounds),
            "tb default": (lambda: _open_tb(long_tb, None), tb_rounds),
            "TensorBoardRun": (lambda: _open_tbrun(long_tb), tb_rounds),
        },
        [long_nb, long_tb],
    )
    notes.append(
        f"{n_long:,}-step run: nbviz {dir_bytes(long_nb) / 1e6:.1f} MB in {len(segs)} "
        f"segment(s){' after a roll (a checkpoint)' if 'checkpoint' in kinds else ', no roll'}"
        f", TensorBoard {dir_bytes(long_tb) / 1e6:.1f} MB; TensorBoard's EventAccumulator "
        f"with its default size guidance (it keeps a sample) {one['tb default']:.2f} s; "
        f"nbviz's TensorBoardRun on the TensorBoard run {one['TensorBoardRun']:.2f} s"
    )

    # 2. a folder of runs
    n_runs, n_tb = params["runs"], params["tb_runs"]
    scratch = Path(tempfile.mkdtemp(prefix="nbviz-bench-"))
    try:
        print(f"building the folder of {n_runs} runs...", flush=True)
        t0 = time.perf_counter()
        make_folder(short_nb, scratch / "nbviz", n_runs)
        built = time.perf_counter() - t0
        print(f"  built in {built:.1f} s ({dir_bytes(scratch / 'nbviz') / 1e6:.0f} MB)")
        half = scratch / "tb_half"
        half.mkdir()
        for k in range(n_tb // 2):
            shutil.copytree(where / "tb_folder" / f"run{k:03d}", half / f"run{k:03d}")
        print(f"opening the folder ({n_runs} nbviz runs, {n_tb} TensorBoard runs)...", flush=True)
        folder = alternate(
            rounds,
            {
                "follower": (lambda: _open_follower(scratch / "nbviz"), rounds),
                "RunFolder": (lambda: _open_folder(scratch / "nbviz"), rounds),
                "tb": (lambda: _multiplexer(where / "tb_folder"), mux_rounds),
                "tb half": (lambda: _multiplexer(half), max(1, mux_rounds // 2)),
            },
            [scratch, where / "tb_folder"],
        )
        check = _open_folder(scratch / "nbviz")
        assert len(check.runs) == n_runs and all(r.error is None for r in check.runs.values())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tb_folder = folder["tb"] * n_runs / n_tb
    notes.append(
        f"folder: `RunFolder.update()` alone {folder['RunFolder']:.2f} s; TensorBoard's "
        f"EventMultiplexer loaded {n_tb} runs in {folder['tb']:.2f} s and {n_tb // 2} in "
        f"{folder['tb half']:.2f} s ({folder['tb'] / n_tb:.3f} and "
        f"{folder['tb half'] / (n_tb // 2):.3f} s a run): **{n_runs} runs extrapolated "
        f"linearly from {n_tb}**"
    )

    # 3. bytes
    n_short = params["short"]
    ours = dir_bytes(short_nb) * 10_000 / n_short
    once = dir_bytes(short_nb, "*.nbrec")
    theirs = dir_bytes(short_tb) * 10_000 / n_short
    notes.append(
        f"bytes from the {n_short:,}-step run; nbviz's includes {once / 1e3:.0f} kB of files "
        f"written once or replaced whole (the layer graph, the latest feature maps); "
        f"the {n_long:,}-step run: nbviz {dir_bytes(long_nb) * 1e4 / n_long / 1e6:.2f} MB "
        f"per 10,000 steps, TensorBoard {dir_bytes(long_tb) * 1e4 / n_long / 1e6:.2f} MB"
    )

    def row(what: str, ours: float, theirs: float, unit: str, goal: float | None) -> str:
        fmt = (lambda v: f"{v:.2f} s") if unit == "s" else (lambda v: f"{v / 1e6:.2f} MB")
        if goal is None:
            label, met = "none set", ""
        else:
            label, met = f"< {fmt(goal)}", "met" if ours < goal else "**not met**"
        return (
            f"| {what} | {fmt(ours)} | {fmt(theirs)} | **{theirs / ours:.1f}x** | {label} | {met} |"
        )

    print()
    print(
        "| what | nbviz | TensorBoard | TensorBoard / nbviz | goal | |\n|---|---|---|---|---|---|"
    )
    print(
        row(
            f"open a {n_long:,}-step run with histograms (`RecordedRun` update + snapshot / "
            "`EventAccumulator`, keep everything)",
            one["nbviz"],
            one["tb"],
            "s",
            1.0,
        )
    )
    print(
        row(
            f"open a folder of {n_runs} runs of {n_short:,} steps (`FolderFollower` / "
            f"`EventMultiplexer`, {n_runs} runs extrapolated from {n_tb})",
            folder["follower"],
            tb_folder,
            "s",
            2.0,
        )
    )
    print(
        row(
            "disk bytes per 10,000 steps",
            ours,
            theirs,
            "B",
            None,
        )
    )
    notes.append(
        f"medians of {rounds} opens for nbviz, {tb_rounds} for TensorBoard's of the long run "
        f"(each of its three readers), {mux_rounds} for its folder of {n_tb} runs"
    )
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
