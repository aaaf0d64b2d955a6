// Small graphs in the schema of nbviz.Graph.to_dict() (GraphData in nbviz/graph/core.py),
// written by hand, for the graph frontend's node tests.

export const f32 = (shape) => ({ shape, dtype: "float32" });

/** Fills in node defaults; an op's path defaults to its parent module's path. */
export function graphOf({ model = "Net", nodes, edges, repeats = [], modules = {}, error = null }) {
  const byId = new Map();
  const full = nodes.map((n) => {
    const parent = n.parent ?? null;
    const node = {
      kind: "op",
      type: n.kind === "module" ? "Module" : "torch.op",
      path: parent ? byId.get(parent).path : "",
      call: 0,
      inputs: [],
      outputs: [f32([1, 4])],
      params: 0,
      params_total: 0,
      flops: null,
      inplace: false,
      error: null,
      ...n,
      parent,
    };
    byId.set(node.id, node);
    return node;
  });
  const root = full.find((n) => n.kind === "module" && n.parent === null);
  return { model, nodes: full, edges, modules, repeats, root: root ? root.id : null, error };
}

/** x -> Residual(conv(x) -> relu -> add(x)) -> output */
export const residual = () =>
  graphOf({
    model: "Residual",
    nodes: [
      { id: "in", kind: "input", name: "x", type: "Tensor" },
      { id: "m0", kind: "module", name: "Residual", type: "Residual", path: "", params_total: 40 },
      {
        id: "m1",
        kind: "module",
        name: "conv",
        type: "Conv2d",
        path: "conv",
        parent: "m0",
        params: 40,
        params_total: 40,
      },
      { id: "o1", kind: "op", name: "conv2d", type: "F.conv2d", parent: "m1" },
      { id: "o2", kind: "op", name: "relu", type: "F.relu", parent: "m0" },
      { id: "o3", kind: "op", name: "add", type: "Tensor.__add__", parent: "m0" },
      { id: "out", kind: "output", name: "output", type: "Tensor" },
    ],
    edges: [
      { source: "in", target: "o1", ...f32([1, 4]) },
      { source: "o1", target: "o2", ...f32([1, 4]) },
      { source: "o2", target: "o3", ...f32([1, 4]) },
      { source: "in", target: "o3", ...f32([1, 4]) },
      { source: "o3", target: "out", ...f32([1, 4]) },
    ],
  });

/** x -> layers (Sequential of 3 identical Blocks, each running linear) -> output */
export const repeated = () =>
  graphOf({
    model: "Stack",
    nodes: [
      { id: "in", kind: "input", name: "x", type: "Tensor" },
      { id: "m0", kind: "module", name: "Stack", type: "Stack", path: "" },
      { id: "m1", kind: "module", name: "layers", type: "Sequential", path: "layers", parent: "m0" },
      { id: "b0", kind: "module", name: "0", type: "Block", path: "layers.0", parent: "m1", params_total: 20 },
      { id: "l0", kind: "op", name: "linear", type: "F.linear", parent: "b0" },
      { id: "b1", kind: "module", name: "1", type: "Block", path: "layers.1", parent: "m1", params_total: 20 },
      { id: "l1", kind: "op", name: "linear", type: "F.linear", parent: "b1" },
      { id: "b2", kind: "module", name: "2", type: "Block", path: "layers.2", parent: "m1", params_total: 20 },
      { id: "l2", kind: "op", name: "linear", type: "F.linear", parent: "b2" },
      { id: "out", kind: "output", name: "output", type: "Tensor" },
    ],
    edges: [
      { source: "in", target: "l0", ...f32([1, 8]) },
      { source: "l0", target: "l1", ...f32([1, 8]) },
      { source: "l1", target: "l2", ...f32([1, 8]) },
      { source: "l2", target: "out", ...f32([1, 8]) },
    ],
    repeats: [["b0", "b1", "b2"]],
  });

/** The same encoder module called on two inputs, results concatenated. */
export const twice = () =>
  graphOf({
    model: "Siamese",
    nodes: [
      { id: "a", kind: "input", name: "a", type: "Tensor" },
      { id: "b", kind: "input", name: "b", type: "Tensor" },
      { id: "m0", kind: "module", name: "Siamese", type: "Siamese", path: "" },
      { id: "e0", kind: "module", name: "enc", type: "Linear", path: "enc", parent: "m0", call: 0 },
      { id: "x0", kind: "op", name: "linear", type: "F.linear", parent: "e0" },
      { id: "e1", kind: "module", name: "enc", type: "Linear", path: "enc", parent: "m0", call: 1 },
      { id: "x1", kind: "op", name: "linear", type: "F.linear", parent: "e1" },
      { id: "c", kind: "op", name: "cat", type: "torch.cat", parent: "m0", outputs: [f32([1, 16])] },
      { id: "out", kind: "output", name: "output", type: "Tensor" },
    ],
    edges: [
      { source: "a", target: "x0", ...f32([1, 4]) },
      { source: "b", target: "x1", ...f32([1, 4]) },
      { source: "x0", target: "c", ...f32([1, 8]) },
      { source: "x1", target: "c", ...f32([1, 8]) },
      { source: "c", target: "out", ...f32([1, 16]) },
    ],
  });

/** Ops at several depths: root runs add; a.b runs mul; a runs two views. */
export const nested = () =>
  graphOf({
    model: "Deep",
    nodes: [
      { id: "in", kind: "input", name: "x", type: "Tensor" },
      { id: "m0", kind: "module", name: "Deep", type: "Deep", path: "" },
      { id: "add", kind: "op", name: "add", type: "Tensor.__add__", parent: "m0" },
      { id: "ma", kind: "module", name: "a", type: "Outer", path: "a", parent: "m0" },
      { id: "v1", kind: "op", name: "view", type: "Tensor.view", parent: "ma", outputs: [f32([4])] },
      { id: "mb", kind: "module", name: "b", type: "Inner", path: "a.b", parent: "ma" },
      { id: "mul", kind: "op", name: "mul", type: "Tensor.__mul__", parent: "mb", outputs: [f32([4])] },
      { id: "v2", kind: "op", name: "view", type: "Tensor.view", parent: "ma", outputs: [f32([2, 2])] },
      { id: "out", kind: "output", name: "output", type: "Tensor" },
    ],
    edges: [
      { source: "in", target: "add", ...f32([2, 2]) },
      { source: "add", target: "v1", ...f32([2, 2]) },
      { source: "v1", target: "mul", ...f32([4]) },
      { source: "mul", target: "v2", ...f32([4]) },
      { source: "v2", target: "out", ...f32([2, 2]) },
      { source: "add", target: "out", ...f32([2, 2]) },
    ],
  });
