"""Where a NaN or an infinity began: the non-finite watch of `nbviz.watch`.

Each training forward's output is checked; when it is non-finite, the first module whose
output was names the layer where it began (``activations``); the gradients' norms, read
with the other statistics, name the deepest non-finite layer of a backward
(``gradients``). The first of them is kept and said once. See `NonfiniteWatch.end_forward`
for how the check stays cheap on the CPU and never syncs on other devices.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._dist import local_module
from .._state import scratch_buffers

# Modules whose output is finite whenever their input is, so a non-finite value never
# begins there: the NaN/Inf watch does not hook them (fewer hook calls per forward).
FINITE_IN_FINITE_OUT = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)


class NonfiniteWatch:
    """The non-finite watch of one model: its state, and what the recorder's hooks call.

    ``outputs`` holds this forward's module outputs (CPU: the tensors, read only if the
    model's output is bad) or their finiteness flags (other devices: read later, no sync);
    ``eager`` forces one of the two checks (None: the outputs' device picks it).
    """

    def __init__(
        self, model: nn.Module, on_nan: str, checked: list[nn.Module], rank: int | None = None
    ) -> None:
        self.model, self.on_nan = model, on_nan
        self.rank = rank  # the process's rank in a distributed job (None: not distributed)
        self.checked = checked  # leaves where a non-finite value can begin
        self.first: dict[str, Any] | None = None  # where the first non-finite value began
        self.outputs: list[tuple[nn.Module, torch.Tensor]] = []
        self.eager: bool | None = None
        self.forward_eager = True  # the check this forward uses
        # Flags of finished forwards on a device: step, modules, flags (outputs' flags last).
        self.act_pending: list[tuple[int, list[nn.Module], torch.Tensor, int]] = []

    @property
    def wants_leaf_hooks(self) -> bool:
        """Whether the leaves' hooks serve this watch (device flags) after the first forward."""
        return not self.forward_eager and self.on_nan != "ignore"

    def record(self, module: nn.Module, output: torch.Tensor) -> None:
        """A leaf module's output in a training forward (kept to a few attribute reads)."""
        outputs = self.outputs
        if not outputs:  # the forward's first output picks the check (see end_forward)
            eager = self.eager
            self.forward_eager = output.device.type == "cpu" if eager is None else eager
        if self.forward_eager:  # held until the forward ends (autograd keeps most anyway),
            outputs.append((module, output))  # read only if the model's output is bad
        elif output.is_floating_point() and output.numel():
            # min and max propagate NaN and +-Inf: their sum is finite iff all values are.
            lo, hi = torch.aminmax(output.detach())
            outputs.append((module, lo.double() + hi.double()))

    def end_forward(
        self,
        step: int,
        outs: list[torch.Tensor] | None,
        flush: Callable[[], None],
        inputs: Any = None,
    ) -> None:
        """Check the model's outputs ``outs`` (None: the model's own forward did not run, so
        every module output counts) and, if one is non-finite, name the first module whose
        output was: where the non-finite value began.

        Checking every module output each step cost a read of every activation (+2-3 % of a
        CPU step), and even an empty hook on every module costs as much again. On the CPU a
        check is a synchronous read anyway, so only the output is read, and when it is bad
        the forward is run once more on the same ``inputs`` (args, kwargs), without
        gradients and with a hook on every module, to find where it began (`_replay`). On
        other devices every module gets a flag on the device (no sync), read with the
        gradient statistics. Either way a non-finite value that the model itself masks out
        (a -inf attention mask) is not an error: only one that reaches the output is."""
        records, self.outputs = self.outputs, []
        if outs is not None:  # the model's floating outputs (integer ones cannot be NaN)
            outs = [t.detach() for t in outs if t.is_floating_point() and t.numel()]
            if not records and self.eager is None:  # no leaf hook ran: the output picks
                self.forward_eager = not outs or outs[0].is_cpu
            elif not records:
                self.forward_eager = self.eager
        # Nothing to check: a model whose output holds no floating values (a non-finite value
        # that does not reach the output is not reported), or no module ran.
        if self.on_nan == "ignore" or not (records if outs is None else outs):
            return
        if not self.forward_eager:
            modules = [m for m, _ in records]
            flags = [f for _, f in records]
            for t in outs or []:
                lo, hi = torch.aminmax(t)
                flags.append(lo.double() + hi.double())
            self.act_pending.append((step, modules, torch.stack(flags), len(outs or [])))
            return
        if outs is not None and all(_finite(t) for t in outs):
            return  # the usual case on the CPU: one reduction, nothing else built
        if outs is not None and not records:  # (no leaf hook ran: find where, by a replay)
            flush()  # an earlier step's gradients may be where it began
            if self.first is not None:
                return  # the earlier one is the one reported
            records = self._replay(*inputs) if inputs is not None else []
        modules = [m for m, _ in records]
        finite = [_finite(t) for _, t in records]
        where = self._first_bad_output(step, modules, finite, outs is not None)
        if where is not None:
            flush()
            self.found(where)

    def _replay(self, args: tuple, kwargs: dict) -> list[tuple[nn.Module, torch.Tensor]]:
        """Run the forward that made a non-finite output again on its inputs, without
        gradients, and return every checked module's output in forward order. The RNG and
        the buffers (batch-norm statistics) are put back: training goes on as if it had not
        run. The user's own hooks on the model's modules do run a second time. A forward
        that fails this time returns nothing (the model itself is then named)."""
        found: list[tuple[nn.Module, torch.Tensor]] = []

        def hook(module: nn.Module, _args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                found.append((module, output))

        handles = [m.register_forward_hook(hook) for m in self.checked]
        try:
            # Copies of the buffers: the originals may be saved for the backward to come.
            forward = local_module(self.model)  # no collective from one rank's replay
            with torch.no_grad(), torch.random.fork_rng(devices=[]), scratch_buffers(forward):
                forward(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a diagnosis must not stop training
            found = []
        finally:
            for h in handles:
                h.remove()
        return found

    def _first_bad_output(
        self, step: int, modules: list[nn.Module], finite: list[bool], had_output: bool
    ) -> dict[str, Any] | None:
        """The first module (forward order) whose output was non-finite; the model itself if
        none was (a non-finite value made by its own code after its last module). A module
        whose output holds a -inf mask on purpose would be named first: none of torch's do."""
        if all(finite) and not had_output:
            return None
        first = modules[finite.index(False)] if not all(finite) else self.model
        names = {m: p or type(m).__name__ for p, m in self.model.named_modules()}
        return {"step": step, "where": "activations", "layer": names[first]}

    def read_flags(self) -> dict[str, Any] | None:
        """Read the device flags of finished forwards (one transfer): the first bad one."""
        pending, self.act_pending = self.act_pending, []
        if not pending:
            return None
        finite = torch.isfinite(torch.cat([flags for _, _, flags, _ in pending])).cpu().tolist()
        at = 0
        for step, modules, flags, n_out in pending:
            ok, at = finite[at : at + len(flags)], at + len(flags)
            if not (all(ok[len(modules) :]) if n_out else all(ok)):
                return self._first_bad_output(step, modules, ok[: len(modules)], n_out > 0)
        return None

    def found(self, where: dict[str, Any]) -> None:
        """Remember the earliest non-finite value (at one step, activations before
        gradients: the forward came first); say so once (on_nan="warn")."""
        if self.rank is not None:  # a distributed job: say which rank saw it
            where = {**where, "rank": self.rank}
        first = self.first is None
        if first or nonfinite_order(where) < nonfinite_order(self.first):
            self.first = where
        if first and self.on_nan == "warn":
            warnings.warn(
                f"nbviz.watch{_of_rank(self.rank)}: non-finite {where['where']} at step "
                f"{where['step']} in "
                f"{where['layer']!r} (training goes on; on_nan='raise' stops it)",
                RuntimeWarning,
                stacklevel=caller_level(),
            )

    def raise_if_found(self, step: int, scalars: dict[str, Any]) -> None:
        """on_nan="raise": stop the loop at the first non-finite value found so far."""
        bad_scalar = [n for n, v in scalars.items() if not math.isfinite(float(v))]
        if self.first is not None or bad_scalar:
            where = self.first or {"step": step, "where": "scalar", "layer": bad_scalar[0]}
            if self.rank is not None:
                where = {**where, "rank": self.rank}
            self.first = where
            raise FloatingPointError(
                f"non-finite {where['where']} at step {where['step']} in {where['layer']!r}"
                f"{_of_rank(self.rank)} (nbviz.watch(on_nan='raise'))"
            )


def _of_rank(rank: int | None) -> str:
    return "" if rank is None else f" (rank {rank})"


def nonfinite_order(where: dict[str, Any]) -> tuple[int, int]:
    """Earlier step first; at one step the forward (activations) came before the gradients."""
    return (where["step"], 0 if where["where"] == "activations" else 1)


def caller_level() -> int:
    """The warnings stack level of the user's code: the first frame outside nbviz and torch
    (the watch reports from inside the model's forward or from step())."""
    inside = (str(Path(__file__).parents[1]), str(Path(torch.__file__).parent))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite (integer and empty tensors are). NaN and +-Inf
    propagate through a sum, and a float64 sum of finite values is finite unless it
    overflows (only float64 values near its limit can), which the exact test then rules
    out: one reduction and one read in the usual case, 2x cheaper than aminmax."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    t = t.detach()
    return math.isfinite(t.sum(dtype=torch.float64)) or bool(torch.isfinite(t).all())
