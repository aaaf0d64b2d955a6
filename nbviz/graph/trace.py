"""Record one forward pass of a model as a layer graph.

`trace` runs the model's real ``forward`` once and records every tensor
operation (torch functions, Tensor methods and operators, seen through a
`TorchFunctionMode`) together with the stack of module calls at that moment
(forward pre/post hooks on every module). Each tensor is mapped to the node that
produced it, so the edges are the real data flow of this call, control flow as
taken. By default the pass runs on meta or fake tensors (shapes only, no
arithmetic), so tracing a large model costs about as much as walking its
Python code.

>>> import torch, nbviz
>>> g = nbviz.trace(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()),
...                 torch.zeros(2, 4))  # doctest: +SKIP
>>> [n["name"] for n in g.nodes]  # doctest: +SKIP
['input', 'Sequential', '0', 'linear', '1', 'relu', 'output']
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from .._checks import did_you_mean
from .._state import preserved
from .core import Graph, Node, find_repeats
from .flops import FlopCounter, flop_diff
from .module_info import REPR_LIMIT, histograms_of, modules_info
from .nested import (
    from_numpy,
    leaves,
    map_tensors,
    model_float_dtype,
    named_inputs,
    tensor_meta,
    tensors_in,
)
from .ops import METADATA, inplace_target, op_names

MODES = ("auto", "meta", "fake", "real")


def check_forward_keywords(model: nn.Module, kwargs: dict[str, Any], *callers: Any) -> None:
    """Refuse a keyword that neither the ``callers`` it went through (their keyword-only
    parameters; the first names the error) nor the model's ``forward`` take: a misspelt
    ``depht=`` must not reach the forward, where its TypeError would only show as a failed
    graph. A forward that takes ``**kwargs`` accepts every name, so nothing is refused then."""
    if not kwargs:
        return
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin or C forward: nothing to check against
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n, p in params.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY]
    own = list(
        dict.fromkeys(
            n
            for f in callers
            for n, p in inspect.signature(f).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )
    )
    caller = callers[0].__qualname__.removesuffix(".__init__")
    for name in kwargs:
        if name not in takes and name not in own:
            hint = did_you_mean(name, [*own, *takes], n=1)
            raise TypeError(
                f"{caller} got the keyword {name!r}, which neither it ({', '.join(own)}) nor "
                f"{type(model).__name__}.forward ({', '.join(takes) or 'no keywords'}) "
                f"takes{hint}"
            )


def trace(
    model: nn.Module, *args: Any, device: Any = None, mode: str = "auto", **kwargs: Any
) -> Graph:
    """Run ``model(*args, **kwargs)`` once and return its layer graph.

    ``mode="meta"`` runs on meta tensors (shapes and dtypes only: the model's
    parameters are swapped for shape-only stand-ins during the call),
    ``"fake"`` on fake tensors (the same, but tensors keep their device),
    ``"real"`` on real tensors. ``"auto"`` (default) tries meta (on the CPU)
    then fake, and falls back to real when the model needs real values (e.g.
    it branches on one); ``graph.mode`` tells which ran. A model with
    parameters on the meta device always runs on meta inputs. Input tensors
    are moved to ``device``, by default the device of the model's parameters;
    numpy arrays among the inputs become tensors first (floating ones in the
    model's floating dtype).

    The model is left as found: hooks removed, train/eval flags, parameters,
    buffers (BatchNorm statistics included) and gradients unchanged. If the
    forward raises, the graph recorded so far comes back with ``graph.error``
    set instead of the exception.

    >>> import torch, nbviz
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> g = nbviz.trace(net, torch.randn(1, 3, 32, 32))  # doctest: +SKIP
    >>> g.node(g.root)["outputs"]  # doctest: +SKIP
    [{'shape': [1, 8, 30, 30], 'dtype': 'float32'}]
    >>> print(g.summary())  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace expects a torch.nn.Module, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    check_forward_keywords(model, kwargs, trace)
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        # Tracing would materialise them, changing the model: the user's call to make.
        raise ValueError(
            "trace expects initialised parameters; this model has lazy modules: "
            "run one forward pass first"
        )
    # numpy inputs become tensors, as in every nbviz widget (torch's own error is 8 lines).
    to_tensor = functools.partial(from_numpy, float_dtype=model_float_dtype(model))
    args = map_tensors(args, to_tensor, np.ndarray, "args")
    kwargs = {k: map_tensors(v, to_tensor, np.ndarray, k) for k, v in kwargs.items()}
    home = _model_device(model)
    if home is not None and home.type == "meta":  # no values anywhere: meta inputs
        return _Tracer(model, "meta", home).run(args, kwargs)
    target = torch.device(device) if device is not None else home
    if mode == "auto":
        # Meta tensors are the cheapest (C++ shape functions, no fake-tensor bookkeeping)
        # but forget the device: used where the device can't change what the code does.
        tries = ["meta", "fake"] if _meta_swappable(model, target) else ["fake"]
    else:
        tries = [mode]
    for try_mode in tries:
        graph = _Tracer(model, try_mode, target).run(args, kwargs)
        if graph.error is None or mode != "auto":
            return graph
    # Values were needed (a branch on a tensor, .item(), .numpy()...) or the model
    # really fails: the real run tells which, and its error is the one to report.
    return _Tracer(model, "real", target).run(args, kwargs)


def _meta_swappable(model: nn.Module, target: torch.device | None) -> bool:
    """Whether a CPU model can run on meta stand-ins for its parameters (ScriptModules can't)."""
    on_cpu = target is None or target.type == "cpu"
    return on_cpu and not any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())


# --- the tracer ----------------------------------------------------------------------------------


class _Tracer:
    """State of one trace: the nodes so far, who produced each tensor, open module calls."""

    def __init__(self, model: nn.Module, mode: str, device: torch.device | None) -> None:
        self.model = model
        self.mode = mode
        self.device = device
        self.nodes: list[Node] = []
        self.edges: list[dict[str, Any]] = []
        self._edge_keys: set[tuple[str, str]] = set()
        self.producer = WeakIdKeyDictionary()  # tensor -> id of the node that produced it
        # Open module calls: module, node, FLOPs so far, the exception being handled then.
        self.stack: list[tuple[nn.Module, Node, int | None, BaseException | None]] = []
        self.calls: dict[nn.Module, int] = {}  # module -> calls so far
        self.failed: dict[int, tuple[BaseException, str]] = {}  # id(exception) -> its node
        self.flops: FlopCounter | None = None
        self.counts = {"m": 0, "n": 0}
        # Static facts about the modules, looked up at every call.
        self.paths: dict[nn.Module, str] = {}
        self.own: dict[nn.Module, int] = {}
        self.total: dict[nn.Module, int] = {}
        for path, m in model.named_modules():
            self.paths[m] = path
            self.own[m] = sum(p.numel() for p in m._parameters.values() if p is not None)
            self.total[m] = sum(p.numel() for p in m.parameters())
        # Parameters and buffers are state, not activations: never a node input or an edge.
        self.state_ids = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
        home = _model_device(model)
        self.home_type = home.type if home is not None else None

    # --- running -------------------------------------------------------------------------------

    def run(self, args: tuple, kwargs: dict) -> Graph:
        error = None
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            # What a forward may change (buffers' values, replaced tensors, modes) goes back.
            stack.enter_context(
                preserved(self.model, tensors=True, buffer_values=self.mode != "meta")
            )
            if self.mode == "real":
                stack.enter_context(torch.random.fork_rng(devices=_cuda_devices(self.device)))
            try:
                args, kwargs = map_tensors((args, kwargs), self._converter(stack))
                self._add_inputs(args, kwargs)
                if self.mode == "meta" and self.home_type != "meta":
                    stack.enter_context(self._meta_state())
                self.flops = stack.enter_context(FlopCounter())
                for m in self.paths:
                    if not isinstance(m, torch.jit.ScriptModule):  # no hooks there: opaque
                        stack.enter_context(self._hooks(m))
                stack.enter_context(_Recorder(self))
                output = self.model(*args, **kwargs)
            except Exception as exc:
                error = exc
            else:
                stack.close()  # leave the modes before recording outputs
                self._add_outputs(output)
        graph = self._graph(error)
        self.producer = WeakIdKeyDictionary()  # drop every reference into this pass
        self.failed.clear()
        return graph

    def _meta_state(self) -> contextlib.AbstractContextManager:
        """Swap every parameter and buffer for an empty meta tensor of its shape, for the call.

        torch's own re-parametrisation (what `torch.func.functional_call` uses) puts the
        originals back on exit, ties shared weights to one stand-in, and keeps
        `nn.LSTM`'s flat weight list in step.
        """
        from torch.nn.utils.stateless import _reparametrize_module

        named = [*self.model.named_parameters(), *self.model.named_buffers()]
        state = {name: torch.empty_like(t, device="meta") for name, t in named}
        self.state_ids |= {id(t) for t in state.values()}
        return _reparametrize_module(self.model, state, tie_weights=True)

    def _converter(self, stack: contextlib.ExitStack):
        """How to turn an input tensor into one for this mode (on the target device)."""
        device = self.device
        if self.mode == "meta":
            return lambda t: t.to("meta")
        if self.mode == "fake":
            from torch._subclasses.fake_tensor import FakeTensorMode

            # An op that can't run on fake tensors is logged by torch as an error; here it
            # only means "retry with real tensors", so keep the notebook quiet.
            log = logging.getLogger("torch._subclasses.fake_tensor")
            stack.callback(log.setLevel, log.level)
            log.setLevel(logging.CRITICAL)

            # Real parameters may meet fake inputs: they are faked op by op, never written.
            fake = stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))

            def to_fake(t: torch.Tensor) -> torch.Tensor:
                if t.is_meta:  # a shape-only input: make an empty fake one
                    return torch.empty_strided(
                        t.shape, t.stride(), dtype=t.dtype, device=device or "cpu"
                    )
                t = fake.from_tensor(t)
                return t.to(device) if device is not None else t

            return to_fake
        return lambda t: t.to(device) if device is not None else t

    def _hooks(self, module: nn.Module) -> contextlib.AbstractContextManager:
        """Forward pre/post hooks on one module, removed when the context closes."""
        handles = [
            module.register_forward_pre_hook(self._enter, with_kwargs=True, prepend=True),
            module.register_forward_hook(self._exit, with_kwargs=True, always_call=True),
        ]
        stack = contextlib.ExitStack()
        for h in handles:
            stack.callback(h.remove)
        return stack

    # --- recording -----------------------------------------------------------------------------

    def _new_node(self, kind: str, name: str, type_: str, path: str, inputs: list) -> Node:
        prefix = "m" if kind == "module" else "n"
        node_id = f"{prefix}{self.counts[prefix]}"
        self.counts[prefix] += 1
        parent = self.stack[-1][1] if self.stack else None
        node = {
            "id": node_id,
            "kind": kind,
            "name": name,
            "type": type_,
            "path": path,
            "parent": parent["id"] if parent and kind not in ("input", "output") else None,
            "call": 0,
            "inputs": [tensor_meta(t) for t in inputs],
            "outputs": [],
            "params": 0,
            "params_total": 0,
            "flops": 0,
            "inplace": False,
            "error": None,
        }
        self.nodes.append(node)
        return node

    def _consume(self, node: Node, tensors: list[torch.Tensor]) -> None:
        """Edges from the producers of ``tensors`` to ``node`` (one per producer)."""
        for t in tensors:
            source = self.producer.get(t)
            if source is not None and (source, node["id"]) not in self._edge_keys:
                self._edge_keys.add((source, node["id"]))
                self.edges.append({"source": source, "target": node["id"], **tensor_meta(t)})

    def _produce(self, node: Node, tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            if id(t) not in self.state_ids:
                self.producer[t] = node["id"]

    def _add_inputs(self, args: tuple, kwargs: dict) -> None:
        for name, t in named_inputs(self.model.forward, args, kwargs):
            node = self._new_node("input", name, "input", "", [])
            node["outputs"] = [tensor_meta(t)]
            if t not in self.producer:  # the same tensor passed twice: its first name wins
                self._produce(node, [t])

    def _add_outputs(self, output: Any) -> None:
        for path, t in leaves(output, "output"):
            node = self._new_node("output", path, "output", "", [t])
            node["outputs"] = [tensor_meta(t)]
            self._consume(node, [t])

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        with torch._C.DisableTorchFunction():  # our own bookkeeping is not part of the graph
            path = self.paths[module]
            name = path.rpartition(".")[2] if path else type(module).__name__
            tensors = [t for t in tensors_in((args, kwargs)) if id(t) not in self.state_ids]
            node = self._new_node("module", name, type(module).__name__, path, tensors)
            node["call"] = self.calls.get(module, 0)
            self.calls[module] = node["call"] + 1
            node["params"] = self.own[module]
            node["params_total"] = self.total[module]
            self.stack.append((module, node, self.flop_total(), sys.exc_info()[1]))

    def _exit(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        with torch._C.DisableTorchFunction():
            # Pop up to this module's call: calls left open by an exception caught inside.
            while self.stack:
                m, node, start, handled = self.stack.pop()
                if m is module:
                    break
            else:
                return
            # Hooks with always_call run inside the `except` of Module.__call__ when the
            # forward raised: a new exception, not one the caller was already handling.
            exc = sys.exc_info()[1]
            if exc is not None and exc is not handled:
                self.failed.setdefault(id(exc), (exc, node["id"]))
                node["flops"] = None  # an unfinished call
                return
            node["outputs"] = [tensor_meta(t) for t in tensors_in(output)]
            end = self.flop_total()
            node["flops"] = end - start if end is not None and start is not None else None

    def record_op(self, func: Any, args: tuple, kwargs: dict, out: Any, flops: int | None) -> None:
        """Record one torch call; skip those that only read metadata (size, dim, shape...)."""
        target = inplace_target(func, args, kwargs)
        outputs = tensors_in(out)
        if not outputs and target is None:
            return
        written = kwargs.get("out")
        inputs = [
            t
            for t in tensors_in((args, kwargs))
            if id(t) not in self.state_ids and (written is None or t is not written)
        ]
        name, type_ = op_names(func)
        path = self.stack[-1][1]["path"] if self.stack else ""
        node = self._new_node("op", name, type_, path, inputs)
        node["flops"] = flops
        node["inplace"] = target is not None
        self._consume(node, inputs)  # the old version of an in-place target is consumed...
        if target is not None:  # ...and the op produces the tensor from now on
            outputs = outputs or [target]
            base = target._base
            self._produce(node, [target] + ([base] if base is not None else []))
        node["outputs"] = [tensor_meta(t) for t in outputs]
        self._produce(node, outputs)

    def record_failure(self, func: Any, args: tuple, kwargs: dict, exc: BaseException) -> None:
        inputs = [t for t in tensors_in((args, kwargs)) if id(t) not in self.state_ids]
        name, type_ = op_names(func)
        path = self.stack[-1][1]["path"] if self.stack else ""
        node = self._new_node("op", name, type_, path, inputs)
        node["flops"] = None
        self._consume(node, inputs)
        self.failed.setdefault(id(exc), (exc, node["id"]))

    def flop_total(self) -> int | None:
        return self.flops.total if self.flops is not None else None

    # --- the result ----------------------------------------------------------------------------

    def _graph(self, exc: BaseException | None) -> Graph:
        error = None
        if exc is not None:
            node_id = self.failed.get(id(exc), (None, None))[1]
            message = (str(exc).strip() or type(exc).__name__)[:REPR_LIMIT]
            error = {"type": type(exc).__name__, "message": message, "node": node_id}
            for n in self.nodes:
                if n["id"] == node_id:
                    n["error"] = message
        modules = modules_info(self.model)
        root = next((n["id"] for n in self.nodes if n["kind"] == "module"), None)
        return Graph(
            model=type(self.model).__name__,
            nodes=self.nodes,
            edges=self.edges,
            modules=modules,
            repeats=find_repeats(self.nodes, modules),
            root=root,
            error=error,
            mode=self.mode,
            histograms=histograms_of(self.model),
        )


class _Recorder(TorchFunctionMode):
    """Sees every torch function, Tensor method and operator; records it as an op node.

    While a handler runs, the mode is off: the functions a call makes inside
    (``F.relu`` calling ``torch.relu``) are not seen, so each node is one call
    as written in the model's code.

    On meta tensors a call's result depends on nothing but the metadata of its
    arguments, and torch's meta kernels are mostly Python (a `layer_norm` takes
    about 1 ms), so results are remembered for the rest of the pass: the second
    of twelve identical transformer blocks costs only the bookkeeping.
    """

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer
        self.known: dict[Any, tuple[Any, int | None]] | None = {} if tracer.mode == "meta" else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in METADATA:
            return func(*args, **kwargs)
        tracer = self.tracer
        key = _meta_key(func, args, kwargs) if self.known is not None else None
        if key is not None and key in self.known:
            spec, flops = self.known[key]
            out = _from_spec(spec)
            if flops:
                tracer.flops.total += flops
            tracer.record_op(func, args, kwargs, out, flops)
            return out
        start = tracer.flop_total()
        try:
            out = func(*args, **kwargs)
        except Exception as exc:
            tracer.record_failure(func, args, kwargs, exc)
            raise
        flops = flop_diff(start, tracer.flop_total())
        if key is not None:
            spec = _fresh_spec(out, args, kwargs, func)
            if spec is not None:
                self.known[key] = (spec, flops)
        tracer.record_op(func, args, kwargs, out, flops)
        return out


def _meta_key(func: Any, args: tuple, kwargs: dict) -> Any:
    """A hashable description of a call on meta tensors, or None if it has none."""
    try:
        key = (func, _describe(args), _describe(kwargs))
        hash(key)
    except TypeError:  # an argument we can't describe (an object, a callable...)
        return None
    return key


_CONSTANTS = (int, float, bool, str, type(None), type(Ellipsis), torch.dtype, torch.device)


def _describe(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        if not o.is_meta or type(o) is not torch.Tensor and type(o) is not nn.Parameter:
            raise TypeError
        return ("T", tuple(o.shape), o.stride(), o.storage_offset(), o.dtype, o.requires_grad)
    if isinstance(o, _CONSTANTS) or isinstance(o, (torch.memory_format, torch.layout)):
        return (type(o), o)
    if isinstance(o, (tuple, list)):
        return (type(o), tuple(_describe(x) for x in o))
    if isinstance(o, dict):
        return (dict, tuple((k, _describe(v)) for k, v in o.items()))
    if isinstance(o, slice):
        return (slice, _describe(o.start), _describe(o.stop), _describe(o.step))
    raise TypeError


def _fresh_spec(out: Any, args: tuple, kwargs: dict, func: Any) -> Any:
    """How to remake ``out`` from scratch, or None when it must not be remade:
    it is (or shares memory with) an argument, or the call wrote in place."""
    if inplace_target(func, args, kwargs) is not None:
        return None
    given = {id(t) for t in tensors_in((args, kwargs))}
    many = type(out) in (tuple, list)
    specs = []
    for t in out if many else (out,):
        if type(t) is not torch.Tensor or id(t) in given or t._is_view() or not t.is_meta:
            return None
        specs.append((tuple(t.shape), t.stride(), t.dtype))
    return (type(out), specs) if many else specs[0]


def _from_spec(spec: Any) -> Any:
    if spec[0] in (tuple, list):
        return spec[0](_from_spec(s) for s in spec[1])
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


# --- model state ---------------------------------------------------------------------------------


def _cuda_devices(device: torch.device | None) -> list[int]:
    """CUDA devices whose RNG a real run may advance (its state is put back)."""
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def _model_device(model: nn.Module) -> torch.device | None:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None
