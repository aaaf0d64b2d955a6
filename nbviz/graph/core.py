"""The layer graph of one forward pass: nodes, edges, modules and repeated blocks.

A `Graph` is plain data in the shape of the JSON contract shared with the
frontend (``js/src/graph.js``, ``js/src/lib/graph-view.js``): every node, edge and
module is a dict of str/int/float/bool/None/list/dict, so `Graph.to_dict` can go
straight to ``json.dumps``. The typed dicts below (`GraphData` and its parts) are the
contract's one written source; the frontend's JSDoc types and the tests point here.
`nbviz.trace` builds a graph; this module only reads it.

>>> g = Graph.from_dict({
...     "model": "Net", "root": "m0", "error": None, "repeats": [], "modules": {},
...     "nodes": [{"id": "m0", "kind": "module", "name": "Net", "type": "Net", "path": "",
...                "parent": None, "call": 0, "inputs": [], "outputs": [], "params": 0,
...                "params_total": 0, "flops": 0, "inplace": False, "error": None}],
...     "edges": []})
>>> g.node("m0")["type"]
'Net'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypedDict

from .._text import plural


class TensorMeta(TypedDict):
    """A tensor as the graph shows it."""

    shape: list[int]
    dtype: str  # "float32", "int64", ...


class NodeData(TypedDict):
    """One node: a forward input or output, a module call, or an op inside one."""

    id: str  # "m<k>" for module calls, "n<k>" for the others; unique in the graph
    kind: Literal["input", "output", "module", "op"]
    name: str  # an input's argument name, a module's attribute name, an op's short name
    type: str  # a module's class, an op's qualified name ("F.conv2d"), or the kind
    path: str  # the module's path ("" for the root; an op's: its module's)
    parent: str | None  # the id of the module call it runs in (None: the top level)
    call: int  # which call of its module (0 the first; more when a module is reused)
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    params: int  # parameters the module owns itself (0 for the other kinds)
    params_total: int  # ... and its submodules'
    flops: int | None  # None: not counted (an unfinished call, an op without a formula)
    inplace: bool  # an op that wrote into its input
    error: str | None  # where the forward failed: the exception's message


class EdgeData(TypedDict):
    """A tensor from its producer to one consumer (input, op or output nodes)."""

    source: str
    target: str
    shape: list[int]
    dtype: str


class ParamData(TypedDict):
    """One parameter a module owns."""

    name: str
    shape: list[int]
    numel: int
    dtype: str


class HistogramData(TypedDict):
    """A module's weights in bins: ``counts[i]`` values in ``[edges[i], edges[i+1])``."""

    counts: list[int]
    edges: list[float]


class ModuleData(TypedDict):
    """One module (by path, however often it was called)."""

    type: str
    repr: str  # the module's own repr line (its constructor arguments)
    params: list[ParamData]
    params_own: int
    params_total: int
    histogram: HistogramData | None  # None until read (Graph.modules fills it)


class ErrorData(TypedDict):
    """Where the forward failed."""

    type: str  # the exception's class
    message: str
    node: str | None  # the id of the node that raised


class GraphData(TypedDict):
    """`Graph.to_dict()`: what the widget sends as its ``graph`` trait."""

    model: str  # the model's class name
    nodes: list[NodeData]  # in execution order: inputs first, outputs last
    edges: list[EdgeData]
    modules: dict[str, ModuleData]  # by module path
    repeats: list[list[str]]  # runs of identical sibling calls, as module-call ids
    root: str | None  # the id of the root module's call
    error: ErrorData | None


Node = NodeData
Edge = EdgeData


class Graph:
    """The recorded forward pass of a model: what `nbviz.trace` returns.

    Attributes follow the data contract: ``nodes`` in execution order (inputs
    first, outputs last), ``edges`` from a tensor's producer to its consumers,
    ``modules`` per module path, ``repeats`` (runs of identical sibling blocks),
    ``root`` (the id of the root module call) and ``error`` (None, or where the
    forward failed). ``mode`` says how it was traced: "meta", "fake" or "real".

    >>> import torch, nbviz
    >>> g = nbviz.trace(torch.nn.Linear(3, 2), torch.zeros(1, 3))  # doctest: +SKIP
    >>> g.total_params  # doctest: +SKIP
    8
    """

    def __init__(
        self,
        model: str,
        nodes: list[Node],
        edges: list[Edge],
        modules: dict[str, ModuleData],
        repeats: list[list[str]],
        root: str | None,
        error: ErrorData | None = None,
        mode: str = "real",
        histograms: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.nodes = nodes
        self.edges = edges
        self._modules = modules
        # Weight histograms cost ~6 ns per parameter: computed on first use
        # (the widget's details panel), not while tracing.
        self._histograms = histograms
        self.repeats = repeats
        self.root = root
        self.error = error
        self.mode = mode
        self._by_id = {n["id"]: n for n in nodes}
        self._children: dict[str | None, list[Node]] = {}
        for n in nodes:
            self._children.setdefault(n["parent"], []).append(n)

    @property
    def modules(self) -> dict[str, ModuleData]:
        """MODULE entries per module path (weight histograms filled in on first access)."""
        if self._histograms is not None:
            fill, self._histograms = self._histograms, None
            for path, hist in fill().items():
                if path in self._modules:
                    self._modules[path]["histogram"] = hist
        return self._modules

    # --- lookups -------------------------------------------------------------------------------

    def node(self, id: str) -> Node:
        """The node with this id (KeyError if there is none)."""
        return self._by_id[id]

    def children(self, id: str | None) -> list[Node]:
        """Nodes directly inside the module call ``id``, in execution order.

        ``children(None)`` gives the top level: inputs, the root call, outputs.
        """
        return list(self._children.get(id, []))

    def calls(self, path: str) -> list[Node]:
        """Every call node of the module at ``path`` (several when it is reused)."""
        return [n for n in self.nodes if n["kind"] == "module" and n["path"] == path]

    def ops(self, name: str | None = None) -> list[Node]:
        """The op nodes, optionally only those with this short ``name`` ("add", "relu"...)."""
        return [n for n in self.nodes if n["kind"] == "op" and name in (None, n["name"])]

    @property
    def inputs(self) -> list[Node]:
        """The nodes of the forward's inputs."""
        return [n for n in self.nodes if n["kind"] == "input"]

    @property
    def outputs(self) -> list[Node]:
        """The nodes of the forward's outputs."""
        return [n for n in self.nodes if n["kind"] == "output"]

    def predecessors(self, id: str) -> list[Node]:
        """Nodes with an edge into ``id``."""
        return [self._by_id[e["source"]] for e in self.edges if e["target"] == id]

    def successors(self, id: str) -> list[Node]:
        """Nodes with an edge out of ``id``."""
        return [self._by_id[e["target"]] for e in self.edges if e["source"] == id]

    @property
    def total_params(self) -> int:
        """Parameters of the whole model, each shared parameter counted once."""
        root = self._modules.get("")
        return int(root["params_total"]) if root else 0

    @property
    def total_flops(self) -> int | None:
        """FLOPs of the whole forward pass (None when the forward failed)."""
        return self._by_id[self.root]["flops"] if self.root in self._by_id else None

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> GraphData:
        """The graph as the JSON-serialisable dict of the data contract (a fresh copy)."""
        return {
            "model": self.model,
            "nodes": [_copy(n) for n in self.nodes],
            "edges": [dict(e, shape=list(e["shape"])) for e in self.edges],
            "modules": {path: _copy(m) for path, m in self.modules.items()},
            "repeats": [list(r) for r in self.repeats],
            "root": self.root,
            "error": dict(self.error) if self.error else None,
        }

    @classmethod
    def from_dict(cls, data: GraphData, mode: str = "real") -> Graph:
        """Rebuild a graph from `to_dict` output (e.g. after a JSON round trip)."""
        return cls(
            data["model"],
            [_copy(n) for n in data["nodes"]],
            [dict(e) for e in data["edges"]],
            {p: _copy(m) for p, m in data["modules"].items()},
            [list(r) for r in data["repeats"]],
            data["root"],
            dict(data["error"]) if data.get("error") else None,
            mode,
        )

    # --- text ----------------------------------------------------------------------------------

    def summary(self, depth: int | None = None) -> str:
        """A text table of the module calls: output shape, parameters (own and
        submodules'), FLOPs of the call.

        A run of identical blocks is shown once, "x12", with the parameters and
        FLOPs of the whole run. ``depth`` limits the nesting shown (0: the root
        only).

        >>> print(graph.summary(depth=1))  # doctest: +SKIP
        """
        folded = {r[0]: [self._by_id[i] for i in r] for r in self.repeats}
        hidden = {i for r in self.repeats for i in r[1:]}
        rows = [("Module (type)", "Output shape", "Params", "FLOPs")]

        def visit(node: Node, level: int) -> None:
            if node["id"] in hidden:
                return
            label = f"{'  ' * level}{node['name']} ({node['type']})"
            if node["call"]:
                label += f" call {node['call']}"
            run = folded.get(node["id"], [node])
            if len(run) > 1:
                label += f" x{len(run)}"
            # A module called again in the run (shared weights) has its parameters once.
            params = sum({n["path"]: n["params_total"] for n in run}.values())
            flops = [n["flops"] for n in run]
            flops = None if None in flops else sum(flops)
            if node["error"] is not None:
                label += "  <- error"
            shape = _shape_text(node["outputs"])
            rows.append((label, shape, f"{params:,}", _flops_text(flops)))
            if depth is None or level < depth:
                for child in self._children.get(node["id"], []):
                    if child["kind"] == "module":
                        visit(child, level + 1)

        if self.root in self._by_id:
            visit(self._by_id[self.root], 0)
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(
                (cell.ljust if i == 0 else cell.rjust)(widths[i]) for i, cell in enumerate(row)
            )
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"Total params: {self.total_params:,}")
        lines.append(
            f"Total FLOPs: {_flops_text(self.total_flops)}  (traced with mode={self.mode})"
        )
        if self.error:
            where = self.error["node"]
            at = f" at {self._by_id[where]['path'] or where}" if where in self._by_id else ""
            lines.append(f"Forward failed{at}: {self.error['type']}: {self.error['message']}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        modules = sum(1 for n in self.nodes if n["kind"] == "module")
        ops = sum(1 for n in self.nodes if n["kind"] == "op")
        failed = f", error={self.error['type']}" if self.error else ""
        return (
            f"<Graph {self.model}: {plural(modules, 'module call')}, {plural(ops, 'op')}, "
            f"{plural(len(self.edges), 'edge')}, "
            f"{self.total_params:,} params, mode={self.mode}{failed}>"
        )


# --- repeated blocks -----------------------------------------------------------------------------


def find_repeats(nodes: Iterable[Node], modules: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Runs (>= 2) of consecutive sibling module calls with an identical structure.

    Two calls match when their modules have the same type and own parameter
    shapes, and so do their submodules, recursively (the structure of the
    module objects, from ``modules``); a module called again right after itself
    matches too. "Consecutive" means no other node of the same parent between
    them, so a folded run hides nothing.
    """
    signature = _signatures(modules)
    by_parent: dict[str | None, list[Node]] = {}
    for n in nodes:
        by_parent.setdefault(n["parent"], []).append(n)
    runs: list[list[str]] = []
    for siblings in by_parent.values():
        run: list[Node] = []
        for n in [*siblings, None]:  # None flushes the last run
            key = signature.get(n["path"]) if n is not None and n["kind"] == "module" else None
            if run and key is not None and key == signature.get(run[0]["path"]):
                run.append(n)
                continue
            if len(run) >= 2:
                runs.append([m["id"] for m in run])
            run = [n] if key is not None else []
    return runs


def _signatures(modules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Structure signature per module path: type, own param shapes, children's, recursively."""
    children: dict[str, list[str]] = {}
    for path in modules:
        if path:
            parent = path.rpartition(".")[0]
            children.setdefault(parent, []).append(path)
    memo: dict[str, Any] = {}
    for path in modules:
        _signature(path, modules, children, memo)
    return memo


def _signature(
    path: str, modules: dict[str, dict[str, Any]], children: dict[str, list[str]], memo: dict
) -> Any:
    # (A module-level function, not a closure: a recursive closure is a reference cycle,
    # which would leave the memo to the garbage collector.)
    if path not in memo:
        m = modules[path]
        own = tuple((p["name"], tuple(p["shape"]), p["dtype"]) for p in m["params"])
        kids = tuple(
            (c.rpartition(".")[2], _signature(c, modules, children, memo))
            for c in children.get(path, [])
        )
        memo[path] = (m["type"], own, kids)
    return memo[path]


# --- helpers -------------------------------------------------------------------------------------


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough that the caller can't change the graph through it."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _copy(v)
        elif isinstance(v, list):
            v = [
                _copy(x) if isinstance(x, dict) else list(x) if isinstance(x, list) else x
                for x in v
            ]
        out[k] = v
    return out


def _shape_text(outputs: list[dict[str, Any]]) -> str:
    if not outputs:
        return "-"
    text = ", ".join(str(o["shape"]) for o in outputs[:2])
    return text + (f" +{len(outputs) - 2}" if len(outputs) > 2 else "")


def _flops_text(flops: int | None) -> str:
    if flops is None:
        return "?"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.2f} {unit}"
    return str(flops)
