import assert from "node:assert/strict";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import {
  allRuns,
  boxSize,
  boxText,
  canExpand,
  detailFacts,
  displayName,
  edgeLabel,
  errorInfo,
  expandedToDepth,
  FOLD_PREFIX,
  foldLabel,
  formatCount,
  formatFlops,
  formatShape,
  formatValue,
  indexGraph,
  minimumIsTransposed,
  overlayScale,
  placeLabels,
  probeGraph,
  readLayout,
  reprLines,
  search,
  toElk,
  visibleGraph,
} from "../src/lib/graph-view.js";

import { graphOf, nested, repeated, residual, twice } from "./graph-fixtures.mjs";

const ids = (vis) => vis.nodes.map((v) => v.id);
const pairs = (vis) => vis.edges.map((e) => `${e.source}>${e.target}`).sort();

// ---------------------------------------------------------------------------

test("index: children in execution order, depths, deepest depth", () => {
  const idx = indexGraph(nested());
  assert.deepEqual(idx.children.get("m0"), ["add", "ma"]);
  assert.deepEqual(idx.children.get("ma"), ["v1", "mb", "v2"]);
  assert.equal(idx.depth.get("m0"), 0);
  assert.equal(idx.depth.get("ma"), 1);
  assert.equal(idx.depth.get("mb"), 2);
  assert.equal(idx.maxDepth, 3); // a.b (depth 2) still opens onto its mul
  assert.ok(canExpand(idx, "mb"));
  assert.ok(!canExpand(idx, "add"));
});

test("expand to depth: 0 is one box, leaf modules stay closed until the deepest depth", () => {
  const idx = indexGraph(nested());
  assert.deepEqual([...expandedToDepth(idx, 0)], []);
  assert.deepEqual([...expandedToDepth(idx, 1)].sort(), ["m0"]);
  assert.deepEqual([...expandedToDepth(idx, 2)].sort(), ["m0", "ma"]);
  assert.deepEqual([...expandedToDepth(idx, 3)].sort(), ["m0", "ma", "mb"]);
  const r = indexGraph(residual());
  assert.equal(r.maxDepth, 2);
  assert.deepEqual([...expandedToDepth(r, 1)], ["m0"]); // conv only holds an op
  assert.deepEqual([...expandedToDepth(r, 2)].sort(), ["m0", "m1"]);
});

test("depth 0: the model is one box between its inputs and outputs", () => {
  const idx = indexGraph(residual());
  const vis = visibleGraph(idx, new Set(), new Set());
  assert.deepEqual(ids(vis), ["in", "m0", "out"]);
  assert.deepEqual(pairs(vis), ["in>m0", "m0>out"]);
  // two graph edges (x -> conv2d, x -> add) lift onto one
  const e = vis.edges.find((x) => x.source === "in");
  assert.equal(e.count, 2);
  assert.equal(e.label, "1×4");
  assert.equal(e.container, "");
});

test("residual block: the skip connection survives lifting to a collapsed conv", () => {
  const idx = indexGraph(residual());
  const vis = visibleGraph(idx, new Set(["m0"]), new Set());
  assert.deepEqual(ids(vis), ["in", "m0", "m1", "o2", "o3", "out"]);
  assert.equal(vis.byId.get("m0").open, true);
  assert.equal(vis.byId.get("m1").open, false);
  assert.equal(vis.byId.get("m1").parent, "m0");
  assert.deepEqual(pairs(vis), ["in>m1", "in>o3", "m1>o2", "o2>o3", "o3>out"]);
  // edges between the root's children live in the root container
  assert.equal(vis.edges.find((e) => e.source === "m1").container, "m0");
  assert.equal(vis.edges.find((e) => e.source === "in" && e.target === "o3").container, "");
  assert.equal(vis.rep("o1"), "m1");
});

test("fully open: every op shows and edges are the graph's own", () => {
  const idx = indexGraph(residual());
  const vis = visibleGraph(idx, new Set(["m0", "m1"]), new Set());
  assert.equal(vis.nodes.length, 7);
  assert.deepEqual(pairs(vis), ["in>o1", "in>o3", "o1>o2", "o2>o3", "o3>out"]);
  assert.ok(vis.edges.every((e) => e.count === 1));
  assert.equal(vis.edges.find((e) => e.source === "o1").container, "m0");
});

test("a 3x repeated block folds into one box and unfolds into three", () => {
  const idx = indexGraph(repeated());
  assert.deepEqual([...idx.runs.keys()], ["b0"]);
  const open = new Set(["m0", "m1"]);
  const folded = visibleGraph(idx, open, allRuns(idx));
  assert.deepEqual(ids(folded), ["in", "m0", "m1", `${FOLD_PREFIX}b0`, "out"]);
  const fold = folded.byId.get(`${FOLD_PREFIX}b0`);
  assert.equal(fold.kind, "fold");
  assert.deepEqual(fold.members, ["b0", "b1", "b2"]);
  assert.equal(fold.parent, "m1");
  // edges between members vanish, edges in and out attach to the fold
  assert.deepEqual(pairs(folded), [`${FOLD_PREFIX}b0>out`, `in>${FOLD_PREFIX}b0`]);
  assert.equal(foldLabel(idx, fold.members), "layers.0 … layers.2");
  const t = boxText(idx, fold);
  assert.equal(t.badge, "×3");
  assert.equal(t.subtitle, "Block");

  const unfolded = visibleGraph(idx, open, new Set());
  assert.deepEqual(ids(unfolded), ["in", "m0", "m1", "b0", "b1", "b2", "out"]);
  assert.deepEqual(pairs(unfolded), ["b0>b1", "b1>b2", "b2>out", "in>b0"]);
  assert.equal(unfolded.byId.get("b1").run, "b0");

  // a folded run hides even members someone expanded
  const inside = visibleGraph(idx, new Set(["m0", "m1", "b1"]), allRuns(idx));
  assert.ok(!inside.byId.has("l1"));
  assert.equal(inside.rep("l1"), `${FOLD_PREFIX}b0`);
  // ... and shows them once unfolded
  const shown = visibleGraph(idx, new Set(["m0", "m1", "b1"]), new Set());
  assert.ok(shown.byId.has("l1"));
  assert.deepEqual(pairs(shown), ["b0>l1", "b2>out", "in>b0", "l1>b2"]);
});

test("a module called twice: two boxes, expanded one call at a time", () => {
  const idx = indexGraph(twice());
  const vis = visibleGraph(idx, new Set(["m0"]), new Set());
  assert.deepEqual(ids(vis), ["a", "b", "m0", "e0", "e1", "c", "out"]);
  assert.equal(vis.byId.get("e0").node.path, vis.byId.get("e1").node.path);
  assert.equal(displayName(idx.byId.get("e0")), "enc");
  assert.equal(displayName(idx.byId.get("e1")), "enc (call 2)");
  assert.deepEqual(pairs(vis), ["a>e0", "b>e1", "c>out", "e0>c", "e1>c"]);
  // repeated calls of one module read as calls in a fold's label
  assert.equal(foldLabel(idx, ["e0", "e1"]), "enc (calls 1–2)");
  const one = visibleGraph(idx, new Set(["m0", "e1"]), new Set());
  assert.ok(one.byId.has("x1") && !one.byId.has("x0"));
  assert.deepEqual(pairs(one), ["a>e0", "b>x1", "c>out", "e0>c", "x1>c"]);
});

test("ops nested in modules lift to the outermost collapsed module", () => {
  const idx = indexGraph(nested());
  const d1 = visibleGraph(idx, new Set(["m0"]), new Set());
  assert.deepEqual(ids(d1), ["in", "m0", "add", "ma", "out"]);
  assert.deepEqual(pairs(d1), ["add>ma", "add>out", "in>add", "ma>out"]);
  assert.equal(d1.rep("mul"), "ma");
  const d2 = visibleGraph(idx, new Set(["m0", "ma"]), new Set());
  assert.deepEqual(pairs(d2), ["add>out", "add>v1", "in>add", "mb>v2", "v1>mb", "v2>out"]);
  assert.equal(d2.edges.find((e) => e.source === "v1").container, "ma");
  // the edge from add (in the root) to v1 (in a) lives in the root container
  assert.equal(d2.edges.find((e) => e.target === "v1").container, "m0");
  // expanding a child of a collapsed module shows nothing new
  const hidden = visibleGraph(idx, new Set(["m0", "mb"]), new Set());
  assert.deepEqual(ids(hidden), ids(d1));
});

test("duplicate graph edges merge; mixed shapes are listed", () => {
  const g = twice();
  const idx = indexGraph(g);
  const closed = visibleGraph(idx, new Set(), new Set());
  assert.deepEqual(pairs(closed), ["a>m0", "b>m0", "m0>out"]);
  assert.equal(edgeLabel(["1×4"], 3), "1×4");
  assert.equal(edgeLabel(["1×4", "1×8"], 2), "1×4, 1×8");
  assert.equal(edgeLabel(["a", "b", "c"], 4), "4 tensors");
  assert.equal(edgeLabel([], 2), "2 tensors");
  assert.equal(edgeLabel([], 1), "");
});

test("search: case-insensitive over path, name and type; opens ancestors and runs", () => {
  const idx = indexGraph(repeated());
  const r = search(idx, "LAYERS.1");
  assert.deepEqual(r.matches, ["b1"]);
  assert.deepEqual(r.expand.sort(), ["m0", "m1"]);
  assert.deepEqual(r.unfold, ["b0"]);
  const byType = search(idx, "block");
  assert.deepEqual(byType.matches, ["b0", "b1", "b2"]);
  const byName = search(idx, "sequential");
  assert.deepEqual(byName.matches, ["m1"]);
  assert.deepEqual(byName.unfold, []);
  assert.deepEqual(search(idx, "  ").matches, []);
  assert.deepEqual(search(idx, "nothing-like-this").matches, []);
  // an op inside a leaf module (Inner runs mul) is matched only where it shows (below)
  assert.deepEqual(search(indexGraph(nested()), "mul").matches, []);
  const deep = search(indexGraph(nested()), "a.b");
  assert.deepEqual(deep.matches, ["mb"]);
  assert.deepEqual(deep.expand, ["m0", "ma"]);
  // names are data, never markup
  const g = residual();
  g.nodes[2].name = "<img src=x onerror=alert(1)>";
  assert.deepEqual(search(indexGraph(g), "<IMG").matches, ["m1"]);
});

test("search: functional ops a forward calls match by name and type, and are revealed", () => {
  const idx = indexGraph(residual()); // Residual's forward calls F.relu and add itself
  const relu = search(idx, "relu");
  assert.deepEqual(relu.matches, ["o2"]);
  assert.deepEqual(relu.expand, ["m0"]); // the model opens: the op shows
  assert.deepEqual(search(idx, "F.RELU").matches, ["o2"]); // its type
  const g = residual();
  g.nodes[4] = { ...g.nodes[4], name: "relu_", type: "Tensor.relu_" };
  g.nodes.splice(5, 0, { ...g.nodes[5], id: "o4", name: "relu", type: "torch.relu" });
  assert.deepEqual(search(indexGraph(g), "relu").matches, ["o2", "o4"]);
  // an op's path is its module's: searching a module path does not light up its ops
  const deep = indexGraph(nested());
  assert.deepEqual(search(deep, "a.b", new Set(["m0", "ma", "mb"])).matches, ["mb"]); // not its mul
  const views = search(deep, "view"); // ops of Outer, at two depths of nesting
  assert.deepEqual(views.matches, ["v1", "v2"]);
  assert.deepEqual(views.expand, ["m0", "ma"]);
});

test("search: an op inside a leaf module matches where it shows, without opening leaves", () => {
  const idx = indexGraph(residual());
  // conv2d is Conv2d's body: with the model open and conv closed, only the module shows
  assert.deepEqual(search(idx, "conv", new Set(["m0"])).matches, ["m1"]);
  // conv opened by hand: its op shows and matches too, in execution order
  assert.deepEqual(search(idx, "conv", new Set(["m0", "m1"])).matches, ["m1", "o1"]);
  assert.deepEqual(search(idx, "f.conv2d", new Set(["m0", "m1"])).matches, ["o1"]);
  // open but inside a closed ancestor: hidden, so no match (nothing opens for it)
  const hidden = search(idx, "f.conv2d", new Set(["m1"]));
  assert.deepEqual([hidden.matches, hidden.expand], [[], []]);
  // a module match opens its ancestors: ops of an open leaf then show and match
  assert.deepEqual(search(idx, "conv", new Set(["m1"])).matches, ["m1", "o1"]);
  // leaves in a repeat run: hidden while the run is folded
  const rep = indexGraph(repeated());
  const open = new Set(["m0", "m1", "b0", "b1", "b2"]);
  assert.deepEqual(search(rep, "linear", open, new Set(["b0"])).matches, []);
  assert.deepEqual(search(rep, "linear", open, new Set()).matches, ["l0", "l1", "l2"]);
  assert.deepEqual(search(rep, "linear").matches, []); // default view: nothing open
});

test("repr lines: indentation kept, keyword tuples kept whole, text unchanged", () => {
  const repr = [
    "Sequential(",
    "  (0): Conv2d(16, 32, kernel_size=(1, 1), stride=(2, 2), bias=False)",
    "  (1): BatchNorm2d(32, eps=1e-05, momentum=0.1)",
    "",
    ")",
  ].join("\n");
  const lines = reprLines(repr);
  assert.deepEqual(
    lines.map((l) => l.indent),
    [0, 2, 2, 0, 0],
  );
  assert.deepEqual(
    lines[1].parts.filter((p) => p.keep).map((p) => p.text),
    ["kernel_size=(1, 1)", "stride=(2, 2)"],
  );
  assert.deepEqual(lines[2].parts, [{ text: "  (1): BatchNorm2d(32, eps=1e-05, momentum=0.1)", keep: false }]);
  assert.deepEqual(lines[3].parts, [{ text: "", keep: false }]);
  assert.equal(lines.map((l) => l.parts.map((p) => p.text).join("")).join("\n"), repr);
  const odd = "Block(shape=(), x=(a (b) c), <img src=x>)"; // odd text stays text, whole
  assert.equal(
    reprLines(odd)[0]
      .parts.map((p) => p.text)
      .join(""),
    odd,
  );
});

test("error: banner text and what to open so the failing node shows", () => {
  const g = repeated();
  g.error = { type: "RuntimeError", message: "shapes cannot be multiplied", node: "l1" };
  const info = errorInfo(indexGraph(g));
  assert.equal(info.node, "l1");
  assert.equal(info.text, "forward failed at linear in layers.1: RuntimeError: shapes cannot be multiplied");
  assert.deepEqual(info.expand, ["m0", "m1", "b1"]);
  assert.deepEqual(info.unfold, ["b0"]);
  const m = repeated();
  m.error = { type: "ValueError", message: "bad", node: "b2" };
  assert.equal(errorInfo(indexGraph(m)).text, "forward failed at layers.2: ValueError: bad");
  const none = repeated();
  none.error = { type: "KeyError", message: "'x'", node: null };
  assert.equal(errorInfo(indexGraph(none)).text, "forward failed: KeyError: 'x'");
  assert.equal(errorInfo(indexGraph(repeated())), null);
});

test("ELK graph: open modules are compound nodes, edges sit in the innermost common container", () => {
  const idx = indexGraph(nested());
  const vis = visibleGraph(idx, new Set(["m0", "ma"]), new Set());
  const elk = toElk(idx, vis);
  assert.equal(elk.layoutOptions["elk.algorithm"], "layered");
  assert.equal(elk.layoutOptions["elk.direction"], "DOWN");
  assert.equal(elk.layoutOptions["elk.hierarchyHandling"], "INCLUDE_CHILDREN");
  assert.equal(elk.layoutOptions["elk.edgeRouting"], "ORTHOGONAL");
  assert.equal(elk.layoutOptions["elk.layered.considerModelOrder.strategy"], "NODES_AND_EDGES");
  assert.deepEqual(
    elk.children.map((c) => c.id),
    ["in", "m0", "out"],
  );
  const m0 = elk.children[1];
  assert.deepEqual(
    m0.children.map((c) => c.id),
    ["add", "ma"],
  ); // execution order
  const ma = m0.children[1];
  assert.deepEqual(
    ma.children.map((c) => c.id),
    ["v1", "mb", "v2"],
  );
  assert.equal(ma.width, undefined); // ELK sizes containers
  assert.ok(ma.layoutOptions["elk.padding"].includes("top="));
  assert.ok(ma.children.every((c) => c.width > 0 && c.height > 0));
  assert.deepEqual(ma.edges.map((e) => e.id).sort(), ["e:mb>v2", "e:v1>mb"]);
  assert.deepEqual(
    m0.edges.map((e) => e.id),
    ["e:add>v1"],
  );
  assert.deepEqual(elk.edges.map((e) => e.id).sort(), ["e:add>out", "e:in>add", "e:v2>out"]);
  assert.equal(ma.edges[0].labels, undefined); // labels are placed after layout by default
  const labelled = toElk(idx, vis, { edgeLabels: true });
  assert.equal(labelled.children[1].children[1].edges[0].labels[0].text, "4");
  // spacing is not inherited in ELK: containers carry it too
  assert.equal(
    ma.layoutOptions["elk.layered.spacing.nodeNodeBetweenLayers"],
    elk.layoutOptions["elk.layered.spacing.nodeNodeBetweenLayers"],
  );
});

test("ELK lays the graph out; coordinates come back absolute and ids are kept", async () => {
  const elk = new ELK();
  const transposed = minimumIsTransposed(await elk.layout(probeGraph()));
  const idx = indexGraph(residual());
  const vis = visibleGraph(idx, new Set(["m0", "m1"]), new Set());
  const laid = readLayout(await elk.layout(toElk(idx, vis, { transposed })));
  for (const v of vis.nodes) assert.ok(laid.boxes.has(v.id), v.id);
  for (const e of vis.edges) assert.ok(laid.paths.get(e.id).length >= 2, e.id);
  const inside = (a, b) =>
    a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height;
  const box = (id) => laid.boxes.get(id);
  assert.ok(inside(box("o1"), box("m1")), "conv2d inside conv");
  assert.ok(inside(box("m1"), box("m0")), "conv inside the root");
  // downward: input above the model, output below
  assert.ok(box("in").y + box("in").height <= box("m0").y);
  assert.ok(box("out").y >= box("m0").y + box("m0").height);
  // an open container is at least as wide as its header wants
  const want = boxSize(idx, vis.byId.get("m0")).width;
  assert.ok(box("m0").width >= want - 0.5, `${box("m0").width} >= ${want}`);
  // edge paths start at their source box and end at their target box (absolute frame)
  const e = vis.edges.find((x) => x.source === "o1");
  const pts = laid.paths.get(e.id);
  const near = (p, b) => p[0] >= b.x - 1 && p[0] <= b.x + b.width + 1 && p[1] >= b.y - 1 && p[1] <= b.y + b.height + 1;
  assert.ok(near(pts[0], box("o1")));
  assert.ok(near(pts[pts.length - 1], box("o2")));
});

test("edge labels sit beside their edge, clear of boxes, headers and other edges", () => {
  // in -> a (below), in -> b (further below, same tensor: labelled once), a -> b with a short run
  const vis = {
    nodes: [
      { id: "in", kind: "input", open: false },
      { id: "c", kind: "module", open: true },
      { id: "a", kind: "op", open: false },
      { id: "b", kind: "op", open: false },
    ],
    edges: [
      { id: "e1", source: "in", target: "a", label: "1×4" },
      { id: "e2", source: "in", target: "b", label: "1×4" },
      { id: "e3", source: "a", target: "b", label: "2×2" },
      { id: "e4", source: "b", target: "a", label: "" },
    ],
  };
  const boxes = new Map([
    ["in", { x: 0, y: 0, width: 40, height: 20 }],
    ["c", { x: -10, y: 40, width: 140, height: 200 }],
    ["a", { x: 0, y: 120, width: 40, height: 20 }],
    ["b", { x: 0, y: 150, width: 40, height: 20 }],
  ]);
  const paths = new Map([
    [
      "e1",
      [
        [20, 20],
        [20, 120],
      ],
    ],
    [
      "e2",
      [
        [30, 20],
        [30, 30],
        [100, 30],
        [100, 150],
      ],
    ],
    [
      "e3",
      [
        [20, 140],
        [20, 150],
      ],
    ],
    [
      "e4",
      [
        [5, 150],
        [5, 140],
      ],
    ],
  ]);
  const measure = (t) => t.length * 6;
  const spots = placeLabels(vis, { boxes, paths }, measure);
  const s1 = spots.get("e1");
  assert.ok(s1, "e1 labelled");
  // beside its own vertical run, below the container's header band (y 40..68), not inside a box
  assert.ok(Math.abs(s1.x - 24) < 0.01 || Math.abs(s1.x - 16) < 0.01);
  assert.ok(s1.y - 5.5 >= 20 + 2 && (s1.y + 5.5 <= 40 || s1.y - 5.5 >= 40 + 28), `y ${s1.y}`);
  assert.ok(!spots.has("e2"), "the same tensor from the same node is labelled once");
  assert.ok(!spots.has("e3"), "no room on a 10 px run");
  assert.ok(!spots.has("e4"), "no label, no spot");
  // a label never overlaps another edge: the run of e2 at x = 30 is to the right of e1's
  if (s1.anchor === "start") assert.ok(s1.x + measure("1×4") + 2 <= 30 - 1.5 || s1.y + 5.5 <= 30 - 1.5);
});

test("box sizes: folds are wider than a module, ops are smaller", () => {
  const idx = indexGraph(repeated());
  const vis = visibleGraph(idx, new Set(["m0", "m1"]), allRuns(idx));
  const fold = boxSize(idx, vis.byId.get(`${FOLD_PREFIX}b0`));
  const un = visibleGraph(idx, new Set(["m0", "m1"]), new Set());
  const single = boxSize(idx, un.byId.get("b0"));
  const op = boxSize(idx, visibleGraph(idx, new Set(["m0", "m1", "b0"]), new Set()).byId.get("l0"));
  assert.ok(fold.width > single.width - 40);
  assert.ok(fold.height > single.height);
  assert.ok(op.height < single.height);
});

test("numbers: parameter counts, FLOPs, shapes", () => {
  assert.equal(formatCount(0), "0");
  assert.equal(formatCount(950), "950");
  assert.equal(formatCount(1728), "1.7k");
  assert.equal(formatCount(23_500), "23.5k");
  assert.equal(formatCount(9408), "9.4k");
  assert.equal(formatCount(1_200_000), "1.2M");
  assert.equal(formatCount(25_557_032), "25.6M");
  assert.equal(formatCount(124_439_808), "124M");
  assert.equal(formatCount(999_999), "1M");
  assert.equal(formatCount(7_000_000_000), "7B");
  assert.equal(formatCount(null), "–");
  assert.equal(formatFlops(4.1e9), "4.1 GFLOPs");
  assert.equal(formatFlops(820e6), "820 MFLOPs");
  assert.equal(formatFlops(12), "12 FLOPs");
  assert.equal(formatFlops(1.5e12), "1.5 TFLOPs");
  assert.equal(formatFlops(null), "–");
  assert.equal(formatShape([1, 64, 56, 56]), "1×64×56×56");
  assert.equal(formatShape([]), "scalar");
  assert.equal(formatShape(null), "");
  assert.equal(formatValue(0.000012), "1.20e-5");
  assert.equal(formatValue(3.14259), "3.14");
});

test("overlay scale: linear, or log when values span more than 3 decades", () => {
  const lin = overlayScale({ a: 2, b: 4, c: 6, d: NaN });
  assert.equal(lin.log, false);
  assert.equal(lin.min, 2);
  assert.equal(lin.max, 6);
  assert.equal(lin.t(4), 0.5);
  const log = overlayScale({ a: 1e-6, b: 1e-3, c: 1 });
  assert.equal(log.log, true);
  assert.ok(Math.abs(log.t(1e-3) - 0.5) < 1e-12);
  const neg = overlayScale({ a: -1, b: 1e6 });
  assert.equal(neg.log, false); // logs need positive values
  assert.equal(overlayScale({ a: 5 }).t(5), 0.5);
  assert.equal(overlayScale(null), null);
  assert.equal(overlayScale({}), null);
});

test("search: a module matches where the match begins, not again in each of its children", () => {
  // layer1.0 has a downsample block (a conv and a norm inside); so has layer2.0
  const nodes = [
    { id: "in", kind: "input", name: "x", type: "Tensor" },
    { id: "m0", kind: "module", name: "Net", type: "Net", path: "" },
  ];
  for (const layer of ["layer1", "layer2"]) {
    const block = `${layer}.0`;
    nodes.push({ id: block, kind: "module", name: "0", type: "Block", path: block, parent: "m0" });
    nodes.push({
      id: `${block}.ds`,
      kind: "module",
      name: "downsample",
      type: "Sequential",
      path: `${block}.downsample`,
      parent: block,
    });
    for (const [k, type] of [
      ["0", "Conv2d"],
      ["1", "BatchNorm2d"],
    ]) {
      nodes.push({
        id: `${block}.ds.${k}`,
        kind: "module",
        name: k,
        type,
        path: `${block}.downsample.${k}`,
        parent: `${block}.ds`,
      });
    }
  }
  nodes.push({ id: "out", kind: "output", name: "output", type: "Tensor" });
  const idx = indexGraph(graphOf({ nodes, edges: [] }));
  assert.deepEqual(search(idx, "downsample").matches, ["layer1.0.ds", "layer2.0.ds"]);
  assert.deepEqual(search(idx, "layer1.0.downsample").matches, ["layer1.0.ds"]);
  assert.deepEqual(search(idx, "downsample.1").matches, ["layer1.0.ds.1", "layer2.0.ds.1"]);
  assert.deepEqual(search(idx, "conv2d").matches, ["layer1.0.ds.0", "layer2.0.ds.0"]); // by type
  assert.deepEqual(search(idx, "layer2").matches, ["layer2.0"]);
});

test("detailFacts: what the details panel states of a module, an op and a failed node", () => {
  const g = nested();
  g.modules = {
    a: { type: "Outer", repr: "Outer()", params: [], params_own: 1200, params_total: 3400, histogram: null },
  };
  g.nodes[3] = { ...g.nodes[3], call: 1, flops: 2500000 };
  g.nodes[4] = { ...g.nodes[4], flops: 16, inplace: true, error: "boom" };
  const idx = indexGraph(g);
  assert.deepEqual(detailFacts(idx, idx.byId.get("ma")), [
    ["call", "#2 of this module"],
    ["own params", "1,200"],
    ["total params", "3,400"],
    ["FLOPs", "2.5 MFLOPs (2,500,000)"],
  ]);
  assert.deepEqual(detailFacts(idx, idx.byId.get("v1")), [
    ["kind", "op"],
    ["in module", "a"],
    ["FLOPs", "16 FLOPs (16)"],
    ["in place", "yes: modifies its input"],
    ["error", "boom"],
  ]);
  assert.deepEqual(detailFacts(idx, idx.byId.get("m0")).at(-1), ["FLOPs", "not counted"]);
});
