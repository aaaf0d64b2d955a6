"""Record one forward pass of a model as a layer graph.

`trace` runs the model's ``forward`` once and records every tensor operation (torch
functions, Tensor methods and operators, seen through a `TorchFunctionMode`) together
with the stack of module calls at that moment (global forward hooks, so modules kept in
plain Python lists are seen too). Each tensor is mapped to the node that produced it, so
the edges are the real data flow of this call, control flow as taken. By default the
pass is either the real forward or, for a model whose arithmetic would cost more, a pass
with shape-only stand-ins for the weights that runs the same Python and hands over to
the real one at the first value it lacks: either way the graph is the real forward's.

>>> import torch, nbviz
>>> g = nbviz.trace(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()),
...                 torch.zeros(2, 4))  # doctest: +SKIP
>>> [n["name"] for n in g.nodes]  # doctest: +SKIP
['input', 'Sequential', '0', 'linear', '1', 'relu', 'output']
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import logging
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.utils._python_dispatch import _disable_current_modes

from .._checks import did_you_mean
from .._state import preserved
from .auto import choose
from .core import Graph, Node, find_repeats
from .flops import FlopCounter
from .module_info import (
    REPR_LIMIT,
    ModuleRow,
    histograms_of,
    module_table,
    modules_info,
    type_name,
)
from .nested import (
    from_numpy,
    leaves,
    map_tensors,
    model_float_dtype,
    named_inputs,
    signature_of,
    tensor_meta,
    tensors_in,
)
from .ops import inplace_target, op_names
from .recorder import NeedsValues, Recorder
from .script import ScriptRunner, runnable

MODES = ("auto", "meta", "fake", "real")


def check_forward_keywords(model: nn.Module, kwargs: dict[str, Any], *callers: Any) -> None:
    """Refuse a keyword that neither the ``callers`` it went through (their keyword-only
    parameters; the first names the error) nor the model's ``forward`` take: a misspelt
    ``depht=`` must not reach the forward, where its TypeError would only show as a failed
    graph. A forward that takes ``**kwargs`` accepts every name, so nothing is refused then."""
    if not kwargs:
        return
    try:
        params = signature_of(model.forward).parameters
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

    ``mode="real"`` runs the forward itself. ``"meta"`` swaps the model's weights for
    shape-only (meta) stand-ins for the call: what depends on them is computed as
    shapes only, while the inputs and what is built from them alone (masks,
    positions) keep their values, and meta tensors report the model's device, so
    the code takes the branches the real run takes; a read of a value computed from
    the weights (``.item()``, a branch on a layer's output) stops it with
    `NeedsValues`. ``"auto"`` (default) runs whichever of the two is cheaper for this
    model and input (meta only where the real forward's arithmetic would cost more,
    see `nbviz.graph.auto`), and real after a meta pass that stopped: the graph is
    always the real forward's. ``"fake"`` runs on fake tensors; libraries that
    detect them take other code paths there (transformers builds explicit attention
    masks), so auto never uses it. ``graph.mode`` tells which ran. A model with
    parameters on the meta device runs a meta pass, as it would run on the CPU (or
    on ``device``). Input tensors are moved to ``device``, by default the device of
    the model's parameters; numpy arrays among the inputs become tensors first
    (floating ones in the model's floating dtype). Every pass runs on copies of the
    inputs: a forward that writes into its input leaves the caller's tensor as it was.

    The model is left as found: hooks removed, train/eval flags, parameters,
    buffers (BatchNorm statistics included) and gradients unchanged. If the
    forward raises, the graph recorded so far comes back with ``graph.error``
    set instead of the exception. Modules kept in plain lists or dicts (not
    registered) show as module calls too, named where their caller keeps them
    (``blocks[0]``). A `torch.jit.trace`d or scripted module runs node by node, so
    its modules and ops show as for any model. Lazy modules must be initialised by
    one forward first (tracing would create their weights: a change to the model);
    the error says how.

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
    _refuse_lazy(model)
    # numpy inputs become tensors, as in every nbviz widget (torch's own error is 8 lines).
    to_tensor = functools.partial(from_numpy, float_dtype=model_float_dtype(model))
    args = map_tensors(args, to_tensor, np.ndarray, "args")
    kwargs = {k: map_tensors(v, to_tensor, np.ndarray, k) for k, v in kwargs.items()}
    rows = module_table(model)
    home = _model_device(model)
    target = torch.device(device) if device is not None else home
    if home is not None and home.type == "meta":  # no weights to run: a meta pass
        graph = _Tracer(model, "meta", target, rows).run(args, kwargs)
        return _explain(graph, on_meta_device=True)
    if mode != "auto":
        return _explain(_Tracer(model, mode, target, rows).run(args, kwargs))
    if choose(model, args, kwargs, target, rows) == "meta":
        graph = _Tracer(model, "meta", target, rows).run(args, kwargs)
        if graph.error is None:
            return graph
    # Values were needed (a branch on a tensor, .item(), .numpy()...) or the model
    # really fails: the real run tells which, and its error is the one to report.
    return _Tracer(model, "real", target, rows).run(args, kwargs)


def _refuse_lazy(model: nn.Module) -> None:
    """Lazy modules create their weights in their first forward: tracing would change the
    model (new, randomly initialised parameters), and torch can't copy them to trace a copy."""
    lazy = [
        f"{path or '(root)'}: {type(m).__name__}"
        for path, m in model.named_modules()
        if isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params()
    ]
    if lazy:
        shown = ", ".join(lazy[:4]) + (f" and {len(lazy) - 4} more" if len(lazy) > 4 else "")
        raise ValueError(
            f"trace expects initialised parameters; {type(model).__name__} has lazy modules "
            f"({shown}) whose weights are created by their first forward. Tracing would "
            "create them (a change to the model), so run the model once first, e.g. "
            "`with torch.no_grad(): model(x)`, then trace it"
        )


def _explain(graph: Graph, on_meta_device: bool = False) -> Graph:
    """Say what to do when a meta pass failed for want of values."""
    error = graph.error
    if error is None or graph.mode != "meta":
        return graph
    if error["type"] != NeedsValues.__name__ and "meta" not in error["message"]:
        return graph
    if on_meta_device:
        hint = (
            " The model's weights are on the meta device, so its forward can only run on "
            "shapes: load real weights (e.g. model.to_empty(device='cpu') then "
            "load_state_dict) to trace this forward."
        )
    else:
        hint = " Trace with mode='real' (or the default, 'auto') to run it on values."
    error["message"] = (error["message"].rstrip(".") + "." + hint)[:REPR_LIMIT]
    for n in graph.nodes:
        if n["id"] == error["node"]:
            n["error"] = error["message"]
    return graph


# --- the tracer ----------------------------------------------------------------------------------


class _Tracer:
    """State of one trace: the nodes so far, who produced each tensor, open module calls."""

    def __init__(
        self,
        model: nn.Module,
        mode: str,
        device: torch.device | None,
        rows: list[ModuleRow] | None = None,
    ) -> None:
        self.model = model
        self.mode = mode
        self.device = device
        self.nodes: list[Node] = []
        self.edges: list[dict[str, Any]] = []
        self._edge_keys: set[tuple[str, str]] = set()
        self.producer = _Producers()  # tensor -> id of the node that produced it
        # Open module calls: module, node, FLOPs so far, the exception being handled then.
        self.stack: list[tuple[nn.Module, Node, int | None, BaseException | None]] = []
        self.calls: dict[nn.Module, int] = {}  # module -> calls so far
        self.failed: dict[int, tuple[BaseException, str]] = {}  # id(exception) -> its node
        self.flops = FlopCounter()  # entered around each call that may count FLOPs
        self.counts = {"m": 0, "n": 0}
        # Static facts about the modules, looked up at every call; modules met during the
        # call that the model does not register (kept in a list...) join them there.
        self.rows = list(rows) if rows is not None else module_table(model)
        self.paths: dict[nn.Module, str] = {}
        # module -> what each of its call nodes says: name, type, path, params, params_total
        self.facts: dict[nn.Module, tuple[str, str, str, int, int]] = {}
        self._learn(self.rows)
        self.adopted: list[nn.Module] = []
        self._adopted_state = contextlib.ExitStack()
        # Parameters and buffers are state, not activations: never a node input or an edge.
        self.state_ids = {
            id(t)
            for row in self.rows
            for store in (row.module._parameters, row.module._buffers)
            for t in store.values()
            if t is not None
        }
        home = _model_device(model)
        self.home_type = home.type if home is not None else None
        # The device meta tensors report in a meta pass: the model's, or the CPU for a
        # model on the meta device (what it would run on, loaded).
        self.disguise = None
        if mode == "meta":
            real = [d for d in (device, home) if d is not None and d.type != "meta"]
            self.disguise = real[0] if real else torch.device("cpu")

    # --- running -------------------------------------------------------------------------------

    def run(self, args: tuple, kwargs: dict) -> Graph:
        with _gc_paused():
            return self._run(args, kwargs)

    def _run(self, args: tuple, kwargs: dict) -> Graph:
        error = None
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            # What a forward may change (buffers' values, replaced tensors, modes) goes back.
            stack.enter_context(
                preserved(self.model, tensors=True, buffer_values=self.mode != "meta")
            )
            stack.enter_context(self._adopted_state)  # ...and that of unregistered modules
            if self.mode != "fake":  # (a meta pass runs real ops on the inputs too)
                stack.enter_context(torch.random.fork_rng(devices=_cuda_devices(self.device)))
            try:
                args, kwargs = map_tensors((args, kwargs), self._converter(stack))
                self._add_inputs(args, kwargs)
                if self.mode == "meta" and self.home_type != "meta":
                    stack.enter_context(self._meta_state(self.model))
                stack.enter_context(self._script_forwards())
                stack.enter_context(self._hooks())
                stack.enter_context(Recorder(self))
                output = self.model(*args, **kwargs)
            except Exception as exc:
                error = exc
            else:
                stack.close()  # leave the modes before recording outputs
                self._add_outputs(output)
        graph = self._graph(error)
        self.producer = _Producers()  # drop every reference into this pass
        self.failed.clear()
        return graph

    def _meta_state(self, module: nn.Module) -> contextlib.AbstractContextManager:
        """Swap every parameter and buffer for an empty meta tensor of its shape, for the call.

        torch's own re-parametrisation (what `torch.func.functional_call` uses) puts the
        originals back on exit, ties shared weights to one stand-in, and keeps
        `nn.LSTM`'s flat weight list in step.
        """
        from torch.nn.utils.stateless import _reparametrize_module

        named = [*module.named_parameters(), *module.named_buffers()]
        state = {name: torch.empty_like(t, device="meta") for name, t in named}
        self.state_ids |= {id(t) for t in state.values()}
        return _reparametrize_module(module, state, tie_weights=True)

    def _converter(self, stack: contextlib.ExitStack):
        """How to turn an input tensor into one for this mode (on the target device).

        A real pass gets copies: nothing the forward writes into reaches the caller's
        tensors. A tensor passed twice is converted once (the forward sees one tensor)."""
        convert = self._conversion(stack)
        done: dict[int, torch.Tensor] = {}

        def once(t: torch.Tensor) -> torch.Tensor:
            if id(t) not in done:
                done[id(t)] = convert(t)
            return done[id(t)]

        return once

    def _conversion(self, stack: contextlib.ExitStack):
        device = self.device
        if self.mode == "meta" and (device is None or device.type == "meta"):
            device = None  # a model on the meta device: the inputs keep theirs (and values)
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

        def to_real(t: torch.Tensor) -> torch.Tensor:
            moved = t.to(device) if device is not None else t
            return _copy_of(t) if moved is t else moved

        return to_real

    def _hooks(self) -> contextlib.AbstractContextManager:
        """Global forward pre/post hooks (every module call, registered or not), removed
        when the context closes."""
        handles = [
            torch_module.register_module_forward_pre_hook(self._pre_hook),
            torch_module.register_module_forward_hook(
                self._post_hook, with_kwargs=True, always_call=True
            ),
        ]
        stack = contextlib.ExitStack()
        for h in handles:
            stack.callback(h.remove)
        return stack

    def _script_forwards(self) -> contextlib.AbstractContextManager:
        """ScriptModules called from Python run their graphs here, node by node (where the
        runner knows every node), instead of in TorchScript's C++ interpreter."""
        stack = contextlib.ExitStack()
        # Made here, not kept: it refers back to the tracer (no cycle left for the GC).
        scripts = ScriptRunner(self.enter, self.leave)
        by_path = {row.path: row.module for row in self.rows}
        for row in self.rows:
            m = row.module
            if not isinstance(m, torch.jit.ScriptModule):
                continue
            parent = by_path.get(row.path.rpartition(".")[0]) if row.path else None
            if not isinstance(parent, torch.jit.ScriptModule) and runnable(m):
                stack.enter_context(_instance_attribute(m, "forward", scripts.forward(m)))
        return stack

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.enter(module, args, None)

    def _post_hook(self, module: nn.Module, args: tuple, *rest: Any) -> None:
        # (module, args, kwargs, output) after a forward; (module, args, output) when it raised
        kwargs, output = rest if len(rest) == 2 else (None, rest[0])
        self.leave(module, args, kwargs, output)

    # --- recording -----------------------------------------------------------------------------

    def _new_node(
        self,
        kind: str,
        name: str,
        type_: str,
        path: str,
        inputs: list,
        call: int = 0,
        params: int = 0,
        params_total: int = 0,
        flops: int | None = 0,
        inplace: bool = False,
    ) -> Node:
        prefix = "m" if kind == "module" else "n"
        counts = self.counts
        k = counts[prefix]
        counts[prefix] = k + 1
        stack = self.stack
        inside = stack and kind != "input" and kind != "output"
        node = {
            "id": f"{prefix}{k}",
            "kind": kind,
            "name": name,
            "type": type_,
            "path": path,
            "parent": stack[-1][1]["id"] if inside else None,
            "call": call,
            "inputs": [tensor_meta(t) for t in inputs],
            "outputs": [],
            "params": params,
            "params_total": params_total,
            "flops": flops,
            "inplace": inplace,
            "error": None,
        }
        self.nodes.append(node)
        return node

    def _consume(self, node: Node, tensors: list[torch.Tensor], metas: list | None = None) -> None:
        """Edges from the producers of ``tensors`` to ``node`` (one per producer); ``metas``:
        the tensors' TensorMeta, when the node has them already."""
        target = node["id"]
        producer, keys = self.producer, self._edge_keys
        for i, t in enumerate(tensors):
            source = producer.get(t)
            if source is not None and (source, target) not in keys:
                keys.add((source, target))
                meta = metas[i] if metas is not None else tensor_meta(t)
                self.edges.append(
                    {"source": source, "target": target, "shape": list(meta["shape"]),
                     "dtype": meta["dtype"]}
                )  # fmt: skip

    def _produce(self, node: Node, tensors: list[torch.Tensor]) -> None:
        node_id, producer, state = node["id"], self.producer, self.state_ids
        for t in tensors:
            if id(t) not in state:
                producer[t] = node_id

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

    def _activations(self, obj: Any) -> list[torch.Tensor]:
        state = self.state_ids
        return [t for t in tensors_in(obj) if id(t) not in state]

    def enter(self, module: nn.Module, args: tuple, kwargs: dict | None) -> None:
        """A module call begins (``kwargs`` None: not known yet, see `leave`)."""
        with torch._C.DisableTorchFunction():  # our own bookkeeping is not part of the graph
            facts = self.facts.get(module)
            if facts is None:
                self._adopt(module)
                facts = self.facts[module]
            name, kind, path, params, params_total = facts
            tensors = self._activations((args, kwargs) if kwargs else args)
            call = self.calls.get(module, 0)
            self.calls[module] = call + 1
            node = self._new_node("module", name, kind, path, tensors, call, params, params_total)
            self.stack.append((module, node, self.flops.total, sys.exc_info()[1]))

    def leave(self, module: nn.Module, args: tuple, kwargs: dict | None, output: Any) -> None:
        """A module call ends: with ``output``, or by the exception being raised now."""
        with torch._C.DisableTorchFunction():
            # Pop up to this module's call: calls left open by an exception caught inside.
            while self.stack:
                m, node, start, handled = self.stack.pop()
                if m is module:
                    break
            else:
                return
            # Always-called hooks run inside the `except` of Module.__call__ when the
            # forward raised: a new exception, not one the caller was already handling.
            exc = sys.exc_info()[1]
            if exc is not None and exc is not handled:
                self.failed.setdefault(id(exc), (exc, node["id"]))
                node["flops"] = None  # an unfinished call
                return
            if kwargs:  # keyword inputs, which the pre-hook did not see
                node["inputs"] = [tensor_meta(t) for t in self._activations((args, kwargs))]
            node["outputs"] = [tensor_meta(t) for t in tensors_in(output)]
            node["flops"] = self.flops.total - start

    def _learn(self, rows: list[ModuleRow]) -> None:
        for row in rows:
            kind = type_name(row.module)
            name = row.path.rpartition(".")[2] if row.path else kind
            self.paths[row.module] = row.path
            self.facts[row.module] = (name, kind, row.path, row.params_own, row.params_total)

    def _adopt(self, module: nn.Module) -> str:
        """Give a module the model does not register (kept in a plain list or dict, made on
        the fly, passed in) a path, where its caller keeps it: "blocks[0]", "heads['cls']";
        "<ReLU>" when the caller has no reference to it. Its submodules come with it; its
        state is put back after the call, and swapped for stand-ins in a meta pass."""
        caller = self.stack[-1][0] if self.stack else self.model
        base = self.paths.get(caller, "")
        name = _where_kept(caller, module) or f"<{type(module).__name__}>"
        path = f"{base}.{name}" if base else name
        taken = set(self.paths.values())
        k = 2
        while path in taken:
            path, k = f"{base}.{name}#{k}" if base else f"{name}#{k}", k + 1
        rows = [r for r in module_table(module, prefix=path) if r.module not in self.paths]
        self._learn(rows)
        self.rows += rows
        self.adopted.append(module)
        state = [*module.parameters(), *module.buffers()]
        self.state_ids |= {id(t) for t in state}
        with _disable_current_modes():  # real copies of its buffers, counted nowhere
            self._adopted_state.enter_context(
                preserved(module, tensors=True, buffer_values=self.mode != "meta")
            )
            if self.mode == "meta" and self.home_type != "meta" and state:
                self._adopted_state.enter_context(self._meta_state(module))
        return path

    def record_op(self, func: Any, args: tuple, kwargs: dict, out: Any, flops: int | None) -> None:
        """Record one torch call; skip those that only read metadata (size, dim, shape...)."""
        target = inplace_target(func, args, kwargs)
        outputs = tensors_in(out)
        if not outputs and target is None:
            return
        written = kwargs.get("out")
        state = self.state_ids
        inputs = [
            t
            for t in tensors_in((args, kwargs) if kwargs else args)
            if id(t) not in state and (written is None or t is not written)
        ]
        name, type_ = op_names(func)
        path = self.stack[-1][1]["path"] if self.stack else ""
        node = self._new_node(
            "op", name, type_, path, inputs, flops=flops, inplace=target is not None
        )
        # The old version of an in-place target is consumed...
        self._consume(node, inputs, node["inputs"])
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
        modules = modules_info(self.model, self.rows)
        root = next((n["id"] for n in self.nodes if n["kind"] == "module"), None)
        return Graph(
            model=type_name(self.model),
            nodes=self.nodes,
            edges=self.edges,
            modules=modules,
            repeats=find_repeats(self.nodes, modules),
            root=root,
            error=error,
            mode=self.mode,
            histograms=histograms_of(self.model, [(self.paths[m], m) for m in self.adopted]),
        )


class _Producers:
    """Tensor -> the id of the node that produced it, holding no tensor alive (a real pass
    must free activations as the forward does). By ``id``, checked against a weak
    reference: an id reused by a new tensor after the old one died finds nothing."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref, str]] = {}

    def get(self, t: torch.Tensor) -> str | None:
        entry = self._by_id.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def __contains__(self, t: torch.Tensor) -> bool:
        return self.get(t) is not None

    def __setitem__(self, t: torch.Tensor, node_id: str) -> None:
        self._by_id[id(t)] = (weakref.ref(t), node_id)


def _where_kept(owner: nn.Module, module: nn.Module) -> str | None:
    """Where ``owner`` keeps an unregistered ``module``: an attribute, or an item of a list,
    tuple or dict attribute ("blocks[0]"); None if it keeps no reference to it."""
    for attr, value in vars(owner).items():
        if value is module:
            return attr
        if type(value) in (list, tuple):
            for i, item in enumerate(value):
                if item is module:
                    return f"{attr}[{i}]"
        elif type(value) is dict:
            for key, item in value.items():
                if item is module:
                    return f"{attr}[{key!r}]"
    return None


@contextlib.contextmanager
def _instance_attribute(obj: Any, name: str, value: Any):
    """``obj.name = value`` for the block; then whatever the instance had (or nothing)."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    object.__setattr__(obj, name, value)
    try:
        yield
    finally:
        if had:
            object.__setattr__(obj, name, old)
        else:
            object.__delattr__(obj, name)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one pass; reference counting frees as ever.
    A pass makes thousands of small dicts and lists that live until it ends (the graph's):
    collections meanwhile would only scan them and promote them to the oldest generation,
    whose full collections (tens of ms with torch imported) they would bring forward."""
    if not gc.isenabled():  # off already (by the caller): theirs to turn back on
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _copy_of(t: torch.Tensor) -> torch.Tensor:
    """A copy of an input tensor that the forward may write into (same strides and flags)."""
    copy = t.detach().clone()
    if t.requires_grad and copy.is_leaf:
        copy.requires_grad_(True)
    return copy


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
