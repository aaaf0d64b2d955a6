"""What a training run looks like from inside: the headless core of `nbviz.watch`.

`TrainingRecorder` hooks a model and, at each ``step()`` (after ``loss.backward()``,
before ``optimizer.step()``), records on the tensors' own device:

- every step: the gradient norm of each layer (parameterised module, in
  forward order), with one ``torch._foreach_norm`` over all gradients, and
  whether the model's output was non-finite; if it was, the first module
  whose output was names the layer where it began (see `nonfinite.NonfiniteWatch`);
- every ``every`` steps: each layer's max |g|, the update-to-weight ratio of
  each layer (the next optimiser step's change over the weights) and the
  fraction of dead ReLU units (channels that are zero for the whole batch) of
  each ReLU module;
- every ``hist_every`` steps: histograms of the weights, gradients and
  activations of a few layers (fixed bins, range doubling exactly; a systematic
  sample of 2**16 values of a larger activation);
- every ``features_every`` steps: the activations of the probe images at a
  few conv layers (a forward in eval mode without gradients).

Values move to the CPU only in `snapshot()`. Only training forwards (autograd
on) are looked at: a validation pass under ``torch.no_grad()`` leaves no trace. Histories are bounded
(`history.RowHistory`): older steps merge pairwise, visibly. Nothing the
model computes changes: the same seed trains to the same weights with and
without the recorder.

>>> import torch
>>> from nbviz.examples import SmallCNN
>>> model = SmallCNN()
>>> w = TrainingRecorder(model)
>>> loss = model(torch.rand(4, 3, 64, 64)).logsumexp(1).mean(); loss.backward()
>>> w.step(loss=loss)
>>> w.snapshot()["layers"][:2]
['features.block1.conv', 'features.block1.bn']
>>> w.detach()
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import int_at_least, positive_seconds, submodule
from .._dist import local_module, rank_and_world
from .features import FeatureProbe, spread
from .histograms import ValueHistograms
from .history import RowHistory
from .nonfinite import FINITE_IN_FINITE_OUT, NonfiniteWatch, caller_level, nonfinite_order
from .runlog import MonitorLog

DEAD_UNIT_MODULES = (nn.ReLU, nn.ReLU6)  # zero for every negative input: a unit can die
KINDS = ("weights", "gradients", "activations")
# Steps of device values (gradient statistics, tensor scalars) kept before they move to the
# CPU even without a snapshot(): a recorder nobody reads stays bounded.
MAX_PENDING = 256
# Values of one activation binned per histogram at most (a systematic sample of larger ones:
# each bin within about +-0.003 of the whole activation's fraction).
ACTIVATION_SAMPLE = 1 << 16


class TrainingRecorder:
    """Record gradient flow, update ratios, dead units, histograms and feature maps.

    Args:
        model: the model being trained.
        probe: a few fixed inputs (N, ...) whose feature maps are shown, or None.
        layers: module paths for the histograms (default: four spread over depth).
        every: steps between update ratios and dead-unit counts.
        hist_every: steps between histograms.
        features_every: steps between feature maps of the probe.
        bins: histogram bins (a multiple of 4).
        capacity: rows kept per history before older ones merge.
        on_nan: "warn" (record and show), "raise" (stop the loop with FloatingPointError
            at the first non-finite gradient or loss), or "ignore".
        logdir: a run directory to record to as well (created if missing), or None; see
            `runlog.MonitorLog`. ``nbviz.follow(logdir)`` shows it from any process.
        log_every: seconds between writes to ``logdir`` (a write queues records; a
            background thread appends them to the file).
        graph: the model's `nbviz.Graph` to record with the run, once (default: traced on
            the probe when there is one; no graph without either).
    """

    def __init__(
        self,
        model: nn.Module,
        probe: Any = None,
        *,
        layers: Sequence[str] | None = None,
        every: int = 20,
        hist_every: int = 100,
        features_every: int = 100,
        bins: int = 64,
        capacity: int = 256,
        max_feature_layers: int = 6,
        max_channels: int = 16,
        on_nan: str = "warn",
        logdir: Any = None,
        log_every: float = 1.0,
        graph: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, value in (
            ("every", every),
            ("hist_every", hist_every),
            ("features_every", features_every),
            ("max_feature_layers", max_feature_layers),
            ("max_channels", max_channels),
        ):
            int_at_least(name, value)
        if on_nan not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_nan must be 'warn', 'raise' or 'ignore', got {on_nan!r}")
        self.model = model
        self.every, self.hist_every, self.features_every = every, hist_every, features_every
        self.on_nan = on_nan
        paths = {m: p for p, m in model.named_modules()}
        # Layers: modules that own parameters, in forward order once the model has run.
        own = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
        self.params = [[p for p in m.parameters(recurse=False)] for m in own]
        self._layer_modules = own
        self.layers = [paths[m] or type(m).__name__ for m in own]
        self.relus = [m for m in model.modules() if isinstance(m, DEAD_UNIT_MODULES)]
        self.relu_names = [paths[m] or type(m).__name__ for m in self.relus]
        # Default histogram layers: four spread over the layers with weight matrices or
        # kernels (conv, linear, embedding), not the norms' scales and shifts.
        # Looked up by path, not by display name (a root owning parameters, as a timm ViT's
        # cls_token or a bare nn.Linear, is displayed by its type). A root with children is
        # left out: its histogram would be every parameter.
        picks = [(paths[m], m) for m in own if paths[m] or next(m.children(), None) is None]
        mains = [p for p, m in picks if any(q.ndim >= 2 for q in m.parameters(recurse=False))]
        self.hist_layers = _pick_layers(model, layers, mains or [p for p, _ in picks], 4)
        self.histograms = ValueHistograms(bins, capacity)  # of hist_layers, every hist_every
        self.feature_probe = FeatureProbe(model, probe, max_feature_layers, max_channels)

        self.steps = 0
        self.scalars: dict[str, list[tuple[int, Any]]] = {}
        self.val: dict[str, list[tuple[int, Any]]] = {}
        # (series, index) of tensor scalars not yet read: read in one transfer, then kept as
        # floats (each tensor moves to the CPU once).
        self._unread: list[tuple[list[tuple[int, Any]], int]] = []
        # (kind, name) -> (points converted, steps, values): see _arrays
        self._converted: dict[tuple[str, str], tuple[int, Any, Any]] = {}
        n, r = len(self.layers), len(self.relus)
        self.grad_norm = RowHistory(n, capacity)
        self.grad_max = RowHistory(n, capacity, reduce="max")
        self.ratio = RowHistory(n, capacity)
        self.dead = RowHistory(r, capacity)
        self.latest: dict[str, np.ndarray] = {}
        self.latest_max_step: int | None = None  # the step of latest["grad_max"]
        # step, owner layer of each gradient, per-gradient norms, maxes (None: not sampled)
        self._pending: list[tuple[int, tuple[int, ...], list[torch.Tensor], torch.Tensor | None]]
        self._pending = []
        self._snapshot_weights: list[torch.Tensor] | None = None
        self._collect = False  # this forward is a sampled one: record activations
        self._in_probe = False
        self._dead_now: list[torch.Tensor | None] = [None] * r
        self._act_hist: dict[str, np.ndarray | None] = {}  # binned activations (fractions)
        self._order: list[nn.Module] = []
        self._flat_params: list[nn.Parameter] = []  # every layer's parameters, in layer order
        self._owners: tuple[int, ...] | None = None  # the layer of each (None: not yet known)
        self._first_pass: list[nn.Module] = []  # layer modules in the order they first ran
        self._layer_set = set(own)
        self.capacity = capacity
        self.versions = {"scalars": 0, "flow": 0, "hist": 0, "features": 0}  # what changed
        self._said_no_gradients = False
        self._handles: list[Any] = []  # the model's hook
        self._leaf_handles: list[Any] = []  # see _set_leaf_hooks
        # Leaves where a non-finite value can begin (one that is finite whenever its input is,
        # as a ReLU or a max pooling, is left out: one Python call saved per forward).
        leaves = [m for m in model.modules() if next(m.children(), None) is None]
        checked = [m for m in leaves if not isinstance(m, FINITE_IN_FINITE_OUT)]
        self.rank, self.world_size = rank_and_world()  # (0, 1) outside torch.distributed
        distributed = self.world_size > 1
        self.nan = NonfiniteWatch(model, on_nan, checked, self.rank if distributed else None)
        self._sampled_handles: list[Any] = []  # present only while a sampled forward is due
        self._armed = (False, False)  # which of them are present: (dead units, histograms)
        positive_seconds("log_every", log_every)
        # In a distributed job rank 0 writes the records and every other rank only where a
        # non-finite value began (with its rank).
        self.log = (
            MonitorLog(self, logdir, log_every, events_only=self.rank != 0)
            if logdir is not None
            else None
        )
        if self.log is not None and not self.log.events_only:
            graph = graph if graph is not None else self._trace_probe()
            if graph is not None:
                self.log.graph(graph)
        self._attach()

    def _trace_probe(self) -> Any:
        """The model's layer graph traced on the probe (once, before any hook of ours is on
        the model), or None: a model that cannot be traced records no graph, with a warning,
        and trains on."""
        probe = self.feature_probe.probe
        if probe is None:
            return None
        from ..graph.trace import trace

        try:
            if isinstance(probe, dict):
                return trace(local_module(self.model), **probe)
            return trace(local_module(self.model), probe)
        except Exception as exc:  # the graph is a view; the run must not fail for it
            warnings.warn(
                f"nbviz.watch: the model's graph is not recorded ({type(exc).__name__}: {exc})",
                RuntimeWarning,
                stacklevel=4,
            )
            return None

    # --- hooks ---------------------------------------------------------------------------------

    def _attach(self) -> None:
        # Last, so that it runs after a leaf hook when the model is itself a leaf.
        self._set_leaf_hooks(True)
        self._handles.append(self.model.register_forward_hook(self._model_hook, with_kwargs=True))
        # The first forward is sampled (it also fixes the layer order).
        self._collect = self._collect_hist = True
        self._arm_sampled_hooks()

    def _set_leaf_hooks(self, on: bool) -> None:
        """A hook on every leaf module that can make a non-finite value. They serve the first
        forward (the layer order), forwards checked with device flags, and a model run
        piecewise; a forward checked on the CPU does without them (a hook costs every module
        Python's slow call path: 2-3 % of a classroom model's step), see `NonfiniteWatch`."""
        for h in self._leaf_handles:
            h.remove()
        self._leaf_handles = []
        if on:
            self._leaf_handles = [
                m.register_forward_hook(self._leaf_hook) for m in self.nan.checked
            ]

    def _arm_sampled_hooks(self) -> None:
        """Hooks that read activations (dead units, activation histograms) exist only while a
        sampled forward is due: the other forwards pay no Python call for them."""
        for h in self._sampled_handles:
            h.remove()
        self._sampled_handles = []
        self._armed = (self._collect, self._collect_hist)
        if self._collect:
            for i, m in enumerate(self.relus):
                self._sampled_handles.append(m.register_forward_hook(self._relu_hook(i)))
        if self._collect_hist:
            by_path = dict(self.model.named_modules())
            for path in self.hist_layers:
                hook = self._hist_hook(path)
                self._sampled_handles.append(by_path[path].register_forward_hook(hook))

    def detach(self) -> None:
        """Remove every hook (idempotent); a run log writes what is left and closes."""
        if self.log is not None and not self.log.writer.closed:
            self._write_log()
            self.log.close()
        for h in self._handles + self._leaf_handles + self._sampled_handles:
            h.remove()
        self._handles.clear()
        self._leaf_handles.clear()
        self._sampled_handles.clear()
        self.nan.outputs = []  # no reference to a forward's tensors outlives the hooks

    @property
    def nonfinite(self) -> dict[str, Any] | None:
        """Where the first non-finite value began: step, where ("activations", "gradients"
        or "scalar") and layer; None while every value was finite."""
        return self.nan.first

    @property
    def attached(self) -> bool:
        """Whether the hooks are on the model (False after `detach`)."""
        return bool(self._handles)

    # The parts' state, under the names the views and snapshot() use.
    @property
    def hist(self) -> dict[tuple[str, str], tuple[Any, Any]]:
        """``(layer, kind) -> (Bins, RowHistory)`` of every histogram (see `histograms`)."""
        return self.histograms.rows

    @property
    def probe(self) -> torch.Tensor | dict[str, Any] | None:
        """The probe inputs on the model's device (a dict of keyword inputs), or None."""
        return self.feature_probe.probe

    @property
    def feature_layers(self) -> list[str]:
        """The conv layers whose maps of the probe are kept."""
        return self.feature_probe.layers

    @property
    def features(self) -> dict[str, np.ndarray]:
        """``layer -> (N, C, h, w)`` uint8 maps of the probe, the latest recorded."""
        return self.feature_probe.maps

    @property
    def features_step(self) -> int | None:
        """The step of `features` (None before the first)."""
        return self.feature_probe.step

    def _training_forward(self) -> bool:
        """A forward that trains: not the probe's, not a validation pass under no_grad."""
        return not self._in_probe and torch.is_grad_enabled()

    def _leaf_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        # Runs for every leaf module on every forward: kept to a few attribute reads.
        if self._in_probe or not torch.is_grad_enabled():  # _training_forward(), inlined
            return
        if not self._order and module in self._layer_set:
            self._first_pass.append(module)
        if self.on_nan != "ignore" and isinstance(output, torch.Tensor):
            self.nan.record(module, output)

    def _model_hook(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if not self._training_forward():
            return
        if isinstance(output, torch.Tensor):  # the usual case, without walking a structure
            outs = [output]
        else:
            leaves = torch.utils._pytree.tree_leaves(output)
            outs = [t for t in leaves if isinstance(t, torch.Tensor)]
        self.nan.end_forward(self.steps, outs, self.flush_pending, (args, kwargs))
        # The layer order is known once a whole forward ran: a CPU-checked model needs the
        # leaf hooks no more; one checked with device flags gets them (back).
        wanted = self.nan.wants_leaf_hooks
        if bool(self._leaf_handles) != wanted:
            self._set_leaf_hooks(wanted)

    def _relu_hook(self, i: int):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not (
                self._collect and isinstance(output, torch.Tensor) and self._training_forward()
            ):
                return
            out = output.detach()
            if out.numel() == 0:  # an empty batch: nothing to count (and no max to take)
                return
            # A unit (channel: dim 1 of an image batch, the last dim otherwise) is alive if
            # one of its values is positive. The outputs are >= 0, so a sum over the
            # contiguous trailing dims is positive iff one value is; then the max over the
            # batch: 2-3x cheaper than one max over the scattered dims, and far cheaper
            # than (out > 0).any(), which writes a whole boolean copy first.
            if out.ndim > 2:
                alive = out.sum(dim=tuple(range(2, out.ndim))).amax(0) > 0
            elif out.ndim == 2:
                alive = out.amax(0) > 0
            else:
                alive = out > 0
            self._dead_now[i] = alive  # counted in _record_sampled, all layers at once

        return hook

    def _hist_hook(self, path: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not (
                self._collect_hist and isinstance(output, torch.Tensor) and self._training_forward()
            ):
                return
            # Binned now, not at step(): by then an in-place op after this layer
            # (ReLU(inplace=True) after a conv or a norm) may have overwritten the output,
            # and a clone would hold a whole activation through the backward.
            self._act_hist[path] = self.histograms.fractions(
                (path, "activations"), [output.detach()], sample=ACTIVATION_SAMPLE
            )

        return hook

    # --- the step ------------------------------------------------------------------------------

    def step(self, **scalars: Any) -> None:
        """Record the scalars and the statistics of the gradients now on the parameters."""
        if not self.attached:
            raise RuntimeError("this recorder is detached; create a new one with nbviz.watch")
        checked = {name: _scalar(name, v) for name, v in scalars.items()}
        step = self.steps
        for name, v in checked.items():
            self._append(self.scalars, name, step, v)
        self.versions["scalars"] += bool(checked)
        self.versions["flow"] += 1
        self._fix_order()
        if self.nan.outputs:  # modules ran but the model's forward did not end (piecewise)
            self.nan.end_forward(self.steps, None, self.flush_pending)
        grads, owners = self._gradients()
        if (
            not grads
            and not self._said_no_gradients
            and any(p.requires_grad for ps in self.params for p in ps)
        ):
            self._said_no_gradients = True  # once: the view keeps saying it
            warnings.warn(
                "nbviz.watch: step() found no gradients on the model's parameters; call "
                "mon.step() after loss.backward() and before optimizer.step() (and "
                "optimizer.zero_grad())",
                RuntimeWarning,
                stacklevel=caller_level(),
            )
        sampled = self._collect
        if grads:
            # Per-parameter values, on the device: summed into layers when read (one
            # transfer and a few numpy operations for every pending step at once).
            norms = torch._foreach_norm(grads)  # 0-d tensors, stacked when read
            self._pending.append((step, owners, norms, _abs_max(grads) if sampled else None))
        if sampled:
            self._record_sampled(step)
        if self._snapshot_weights is not None:
            self._record_ratios(step)
        if step % self.every == 0:
            with torch.no_grad():
                self._snapshot_weights = [p.detach().clone() for ps in self.params for p in ps]
        if step % self.hist_every == 0:
            self._record_histograms(step)
        if self.feature_probe.probe is not None and step % self.features_every == 0:
            self._record_features(step)  # a forward of a few probe inputs
        # Bounded without snapshot() (after the activations' check, which takes precedence
        # over the gradients at the same step).
        if len(self._pending) >= MAX_PENDING or len(self.nan.act_pending) >= MAX_PENDING:
            self.flush_pending()
        if len(self._unread) >= MAX_PENDING:
            self._read_scalars()
        if self.on_nan == "raise":
            self.flush_pending()
            self.nan.raise_if_found(step, checked)
        self.steps += 1
        nxt = self.steps
        self._collect = nxt % self.every == 0
        self._collect_hist = nxt % self.hist_every == 0
        if self._armed != (self._collect, self._collect_hist):
            self._arm_sampled_hooks()
        if self.log is not None and self.log.due():
            self._write_log()

    def _write_log(self) -> None:
        """Queue what is new for the run log (its thread writes the file)."""
        self.flush_pending()
        self._read_scalars()
        self.log.write(self)

    def probe_images(self) -> np.ndarray | None:
        """The probe's thumbnails ``(N, h, w, 3)`` uint8 if it holds images, else None."""
        return self.feature_probe.thumbnails()

    def log_val(self, **scalars: Any) -> None:
        """Record validation scalars at the current step (drawn as points on the same axes)."""
        self._log(self.val, scalars)

    def log_scalars(self, **scalars: Any) -> None:
        """Record training scalars at the current step, after `step` recorded it (a
        framework that logs after its step: the Hugging Face Trainer's ``on_log``)."""
        self._log(self.scalars, scalars)

    def _log(self, series: dict[str, list[tuple[int, Any]]], scalars: dict[str, Any]) -> None:
        step = max(self.steps - 1, 0)
        checked = {name: _scalar(name, v) for name, v in scalars.items()}
        for name, v in checked.items():
            self._append(series, name, step, v)
        self.versions["scalars"] += 1

    def _append(self, series: dict[str, list[tuple[int, Any]]], name: str, step: int, v: Any):
        points = series.setdefault(name, [])
        points.append((step, v))
        if isinstance(v, torch.Tensor):
            self._unread.append((points, len(points) - 1))

    def _read_scalars(self) -> None:
        """Replace the tensor scalars kept so far by floats (one transfer per device)."""
        if not self._unread:
            return
        by_device: dict[torch.device, list[tuple[list[tuple[int, Any]], int]]] = {}
        for points, i in self._unread:
            by_device.setdefault(points[i][1].device, []).append((points, i))
        self._unread = []
        for where in by_device.values():
            values = torch.stack([points[i][1].float() for points, i in where]).cpu().tolist()
            for (points, i), v in zip(where, values, strict=True):
                points[i] = (points[i][0], v)

    def _fix_order(self) -> None:
        """Layers in the order their modules first ran (after the first forward)."""
        if self._order or not self._first_pass:
            return
        seen = list(dict.fromkeys(self._first_pass))
        rest = [m for m in self._layer_modules if m not in seen]
        self._order = seen + rest
        index = {m: i for i, m in enumerate(self._layer_modules)}
        perm = [index[m] for m in self._order]
        self._layer_modules = self._order
        self.params = [self.params[i] for i in perm]
        self.layers = [self.layers[i] for i in perm]
        self._owners = None

    def _gradients(self) -> tuple[list[torch.Tensor], tuple[int, ...]]:
        """The gradients now on the parameters, and the layer (index) each belongs to."""
        if self._owners is None:  # (the layer order is fixed by now: see _fix_order)
            self._flat_params = [p for ps in self.params for p in ps]
            self._owners = tuple(i for i, ps in enumerate(self.params) for _ in ps)
        grads = [p.grad for p in self._flat_params]
        if not any(g is None for g in grads):  # the usual case (`None in` would call ==)
            return grads, self._owners
        kept = [(g, i) for g, i in zip(grads, self._owners, strict=True) if g is not None]
        return [g for g, _ in kept], tuple(i for _, i in kept)

    def _record_sampled(self, step: int) -> None:
        if self.relus and all(d is not None for d in self._dead_now):
            # One transfer for every layer; the dead fraction of each is counted in numpy.
            alive = torch.cat(self._dead_now).cpu().numpy()
            sizes = [len(d) for d in self._dead_now]  # units of each layer (never 0)
            starts = np.cumsum([0, *sizes[:-1]])
            dead = 1 - np.add.reduceat(alive, starts, dtype=np.float64) / sizes
            self.dead.add(step, dead)
            self.latest["dead"] = dead
        self._dead_now = [None] * len(self.relus)

    def _record_ratios(self, step: int) -> None:
        """Change of each layer's weights since the snapshot (one optimiser step) over them."""
        params = [p.detach() for ps in self.params for p in ps]
        old = self._snapshot_weights
        self._snapshot_weights = None
        if old is None or len(old) != len(params):
            return
        with torch.no_grad():
            base = torch._foreach_norm(old)
            torch._foreach_sub_(old, params)  # in place: no second copy of the weights
            delta = torch._foreach_norm(old)
        owners = [i for i, ps in enumerate(self.params) for _ in ps]
        n = len(self.params)
        d2, b2 = np.zeros(n), np.zeros(n)
        deltas, bases = torch.stack(delta).cpu().tolist(), torch.stack(base).cpu().tolist()
        for i, dv, bv in zip(owners, deltas, bases, strict=True):
            d2[i] += dv**2
            b2[i] += bv**2
        ratio = np.sqrt(d2) / np.maximum(np.sqrt(b2), 1e-30)
        self.ratio.add(step - 1, ratio)
        self.latest["ratio"] = ratio

    def _record_histograms(self, step: int) -> None:
        by_path = dict(self.model.named_modules())
        for path in self.hist_layers:
            module = by_path[path]
            ps = list(module.parameters())
            values = {
                "weights": [p.detach() for p in ps],
                "gradients": [p.grad.detach() for p in ps if p.grad is not None],
            }
            for kind, tensors in values.items():
                if tensors:
                    self._add_histogram(
                        path, kind, step, self.histograms.fractions((path, kind), tensors)
                    )
            self._add_histogram(path, "activations", step, self._act_hist.pop(path, None))
        self._act_hist.clear()

    def _add_histogram(self, path: str, kind: str, step: int, fractions: Any) -> None:
        if self.histograms.add((path, kind), step, fractions):
            self.versions["hist"] += 1

    def _record_features(self, step: int) -> None:
        self._in_probe = True  # the recorder's own hooks let the probe's forward pass
        try:
            self.feature_probe.record(self.model, step)
        finally:
            self._in_probe = False
        self.versions["features"] += 1

    # --- reading -------------------------------------------------------------------------------

    def flush_pending(self) -> None:
        """Move the per-step statistics to the CPU (one transfer each) into the histories."""
        found = [self.nan.read_flags(), self._read_gradient_stats()]
        found = [where for where in found if where is not None]
        if found:  # the earlier of the two (one warning, about where it began)
            self.nan.found(min(found, key=nonfinite_order))

    def _read_gradient_stats(self) -> dict[str, Any] | None:
        """Pending norms and maxima into the histories; the first non-finite gradient."""
        pending, self._pending = self._pending, []
        if not pending:
            return None
        # One transfer for every pending step: per-parameter norms, then the sampled maxima.
        maxima = [m for *_, m in pending if m is not None]
        # One stack of every 0-d norm (a stack per step cost 10 us each, at every push).
        values = torch.stack([t for _, _, n, _ in pending for t in n])
        values = torch.cat([values, *maxima]) if maxima else values
        values = values.to(torch.float64).cpu().numpy()
        sizes = [len(n) for _, _, n, _ in pending]
        n_layers, first = len(self.params), None
        squares, values = values[: sum(sizes)] ** 2, values[sum(sizes) :]
        # Each parameter's square into its (step, layer) cell, every pending step at once.
        rows = np.repeat(np.arange(len(pending)), sizes)
        layers = np.concatenate([np.asarray(o, dtype=np.int64) for _, o, _, _ in pending])
        sums = np.zeros((len(pending), n_layers))  # 0: a layer without gradients that step
        np.add.at(sums, (rows, layers), squares)
        norms = list(np.sqrt(sums))
        pieces = iter(np.split(values, np.cumsum([len(m) for m in maxima])[:-1]))
        for step, owners, _, m in pending:
            if m is not None:
                mx = np.full(n_layers, -1.0)  # -1: a layer without gradients this step
                with np.errstate(invalid="ignore"):  # a NaN gradient's max is NaN, as it should
                    np.maximum.at(mx, np.asarray(owners), next(pieces))
                self.grad_max.add(step, mx)
                self.latest["grad_max"] = mx
                self.latest_max_step = step
        for (step, *_), n in zip(pending, norms, strict=True):
            self.grad_norm.add(step, n)
            if first is None and self.on_nan != "ignore" and not np.isfinite(n).all():
                # Backward runs deep to shallow: the deepest non-finite layer is where it began.
                bad = np.flatnonzero(~np.isfinite(n))
                first = {"step": step, "where": "gradients", "layer": self.layers[bad[-1]]}
        self.latest["grad_norm"] = norms[-1]
        return first

    def _arrays(self, kind: str, name: str, points: list[tuple[int, Any]]):
        """A series as (steps, values) arrays. Points are only ever appended, so only those
        added since the last snapshot are converted: a snapshot (two a second while the
        view is shown) costs a copy of the arrays, not a pass over every Python point
        (21 ms a series at 100,000 steps)."""
        done, steps, values = self._converted.get((kind, name), (0, *_series([])))
        if done < len(points):
            new_steps, new_values = _series(points[done:])
            steps, values = np.concatenate([steps, new_steps]), np.concatenate([values, new_values])
            self._converted[(kind, name)] = (len(points), steps, values)
        return steps.copy(), values.copy()

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded so far as numpy arrays and plain values (CPU)."""
        self.flush_pending()
        self._read_scalars()
        return {
            "steps": self.steps,
            "layers": list(self.layers),
            "relus": list(self.relu_names),
            "scalars": {k: self._arrays("scalars", k, v) for k, v in self.scalars.items()},
            "val": {k: self._arrays("val", k, v) for k, v in self.val.items()},
            "grad_norm": (self.grad_norm.rows(), self.grad_norm.steps()),
            "grad_max": (self.grad_max.rows(), self.grad_max.steps()),
            "ratio": (self.ratio.rows(), self.ratio.steps()),
            "dead": (self.dead.rows(), self.dead.steps()),
            "strides": {
                n: getattr(self, n).stride for n in ("grad_norm", "grad_max", "ratio", "dead")
            },
            "latest": dict(self.latest),
            "grad_max_step": self.latest_max_step,
            "histograms": self.histograms.snapshot(),
            "hist_strides": self.histograms.strides(),
            "hist_layers": list(self.hist_layers),
            "features": dict(self.features),
            "features_step": self.features_step,
            "nonfinite": self.nonfinite,
        }


# --- validation and small helpers ----------------------------------------------------------------


def _scalar(name: str, value: Any) -> Any:
    """A number, or a one-element tensor kept as is (read at snapshot time, not now)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0 and not value.is_complex():  # the usual case: a loss, a metric
            return value.detach()
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        if value.is_complex():
            raise ValueError(f"{name} must be real, got dtype {value.dtype}")
        return value.detach().reshape(())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number or a one-element tensor, got {value!r}")
    return float(value)


def _series(points: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array([s for s, _ in points], dtype=np.int64)
    tensors = [v for _, v in points if isinstance(v, torch.Tensor)]
    if tensors:  # one transfer for all tensor values
        moved = iter(torch.stack([t.float().cpu() for t in tensors]).tolist())
        values = [next(moved) if isinstance(v, torch.Tensor) else v for _, v in points]
    else:
        values = [v for _, v in points]
    return steps, np.array(values, dtype=np.float64)


def _abs_max(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The max |t| of each tensor (NaN if it holds one, 0 if it is empty). torch's inf-norm is a
    generic reduction on the CPU, 7x slower there than aminmax (34 ms a step for ResNet-50's
    gradients), and it refuses empty tensors."""
    full = [i for i, t in enumerate(tensors) if t.numel()]
    values = [tensors[i] for i in full]
    device = tensors[0].device
    if not values:
        return torch.zeros(len(tensors), device=device)
    if device.type == "cpu" and not any(t.is_complex() for t in values):
        lo, hi = zip(*(torch.aminmax(t) for t in values), strict=True)
        found = torch.maximum(torch.stack(hi), -torch.stack(lo))
    else:
        found = torch.stack(torch._foreach_norm(values, ord=math.inf))
    if len(values) == len(tensors):
        return found
    return torch.zeros(len(tensors), dtype=found.dtype, device=device).index_copy_(
        0, torch.tensor(full, device=device), found
    )


def _pick_layers(model: nn.Module, layers: Any, default_from: list[str], k: int) -> list[str]:
    if layers is None:
        return spread(default_from, k)
    if isinstance(layers, str):
        layers = [layers]
    paths = dict(model.named_modules())
    for p in layers:
        if not any(True for _ in submodule(model, p, paths).parameters()):
            raise ValueError(f"layer {p!r} has no parameters: pick a layer with weights")
    return list(dict.fromkeys(layers))  # a repeated name is hooked and binned once
