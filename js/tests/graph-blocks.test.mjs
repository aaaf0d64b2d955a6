import assert from "node:assert/strict";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import { blockGraph, joinIn, joinOut, layoutVisible, planBlocks } from "../src/lib/graph-blocks.js";
import { boxSize, estimateWidth, indexGraph, readLayout, toElk, visibleGraph } from "../src/lib/graph-view.js";
import { graphOf } from "./graph-fixtures.mjs";

/** x -> pos; k blocks, each: norm -> mul(pos) -> add(residual); a head after the last. */
function stack(k = 4) {
  const nodes = [
    { id: "in", kind: "input", name: "x", type: "Tensor" },
    { id: "root", kind: "module", name: "Net", type: "Net", path: "" },
    { id: "pos", name: "arange", parent: "root" },
  ];
  const edges = [{ source: "in", target: "pos" }];
  let prev = "pos";
  const repeat = [];
  for (let i = 0; i < k; i++) {
    const b = `b${i}`;
    repeat.push(b);
    nodes.push({ id: b, kind: "module", name: `${i}`, type: "Block", path: `layers.${i}`, parent: "root" });
    nodes.push({ id: `${b}n`, kind: "module", name: "norm", type: "Norm", path: `layers.${i}.norm`, parent: b });
    nodes.push({ id: `${b}n.op`, name: "layer_norm", parent: `${b}n` });
    nodes.push({ id: `${b}m`, name: "mul", parent: b });
    nodes.push({ id: `${b}s`, name: "silu", parent: b });
    nodes.push({ id: `${b}a`, name: "add", parent: b });
    edges.push(
      { source: prev, target: `${b}n.op` },
      { source: `${b}n.op`, target: `${b}m` },
      { source: "pos", target: `${b}m` },
      { source: `${b}m`, target: `${b}s` },
      { source: `${b}s`, target: `${b}a` },
      { source: prev, target: `${b}a` },
    );
    prev = `${b}a`;
  }
  nodes.push({ id: "head", name: "linear", parent: "root" });
  nodes.push({ id: "out", kind: "output", name: "y", type: "Tensor" });
  edges.push({ source: prev, target: "head" }, { source: "head", target: "out" });
  return graphOf({ model: "Stack", nodes, edges, repeats: [repeat] });
}

const all = (idx) => new Set([...idx.byId.values()].filter((n) => n.kind === "module").map((n) => n.id));
const opts = { measure: estimateWidth, minBoxes: 0 };

test("identical open members of a run are one block; small graphs are not split", () => {
  const idx = indexGraph(stack(4));
  const vis = visibleGraph(idx, all(idx), new Set());
  const plan = planBlocks(idx, vis, { ...opts, size: boxSize });
  assert.ok(plan);
  assert.equal(plan.blocks.length, 1);
  assert.deepEqual(
    plan.blocks[0].members.map((m) => m.id),
    ["b0", "b1", "b2", "b3"],
  );
  const t = plan.blocks[0].template;
  assert.deepEqual(t.inside, ["b0n", "b0n.op", "b0m", "b0s", "b0a"]);
  assert.equal(t.into.length, 3); // from the previous block twice (norm, residual) and from pos
  assert.deepEqual(t.inTargets, ["b0n.op", "b0m", "b0a"]);
  assert.equal(t.out.length, 2); // to the next block's norm and residual add: one port
  assert.deepEqual(t.outSources, ["b0a"]);
  assert.equal(planBlocks(idx, vis, { measure: estimateWidth, size: boxSize }), null); // under MIN_BOXES
  // a member opened differently is laid out on its own
  const some = all(idx);
  some.delete("b2n");
  const plan2 = planBlocks(idx, visibleGraph(idx, some, new Set()), { ...opts, size: boxSize });
  assert.deepEqual(
    plan2?.blocks[0].members.map((m) => m.id),
    ["b0", "b1", "b3"],
  );
});

test("a stamped block equals a fresh layout of that member", async () => {
  const elk = new ELK();
  const idx = indexGraph(stack(4));
  const vis = visibleGraph(idx, all(idx), new Set());
  const laid = await layoutVisible((g) => elk.layout(g), idx, vis, opts);
  assert.equal(laid.blocks, 1);
  const plan = planBlocks(idx, vis, { ...opts, size: boxSize });
  for (const m of /** @type {any} */ (plan).blocks[0].members) {
    const fresh = readLayout(await elk.layout(blockGraph(idx, vis, m, estimateWidth)));
    const at = laid.boxes.get(m.id);
    for (const x of m.inside) {
      const a = laid.boxes.get(x);
      const b = fresh.boxes.get(x);
      assert.deepEqual({ ...a, x: a.x - at.x, y: a.y - at.y }, b, `${m.id}: ${x}`);
    }
    for (const e of m.internal) {
      const rel = laid.paths.get(e.id).map(([x, y]) => [x - at.x, y - at.y]);
      assert.deepEqual(rel, fresh.paths.get(e.id), e.id);
    }
    assert.equal(at.width, Math.max(fresh.width, boxSize(idx, vis.byId.get(m.id), estimateWidth).width));
    assert.equal(at.height, fresh.height);
  }
});

test("the assembled picture is complete: every box placed, every edge ends at its boxes", async () => {
  const elk = new ELK();
  const idx = indexGraph(stack(5));
  const vis = visibleGraph(idx, all(idx), new Set());
  const laid = await layoutVisible((g) => elk.layout(g), idx, vis, opts);
  const whole = readLayout(await elk.layout(toElk(idx, vis)));
  assert.deepEqual([...laid.boxes.keys()].sort(), [...whole.boxes.keys()].sort());
  const near = (p, r) => p[0] >= r.x - 1 && p[0] <= r.x + r.width + 1 && p[1] >= r.y - 1 && p[1] <= r.y + r.height + 1;
  for (const e of vis.edges) {
    const p = laid.paths.get(e.id);
    assert.ok(p && p.length >= 2, e.id);
    assert.ok(near(p[0], laid.boxes.get(e.source)), `${e.id} starts at its source`);
    assert.ok(near(p[p.length - 1], laid.boxes.get(e.target)), `${e.id} ends at its target`);
    for (let i = 1; i < p.length; i++) {
      const [a, b] = [p[i - 1], p[i]];
      assert.ok(a[0] === b[0] || a[1] === b[1], `${e.id} stays orthogonal`);
    }
  }
  // members' boxes do not overlap
  const ms = ["b0", "b1", "b2", "b3", "b4"].map((m) => laid.boxes.get(m));
  for (let i = 1; i < ms.length; i++) assert.ok(ms[i].y >= ms[i - 1].y + ms[i - 1].height);
});

test("joins keep routes orthogonal, with the jog just outside the border", () => {
  assert.deepEqual(
    joinIn(
      [
        [5, 0],
        [5, 20],
      ],
      [
        [9, 40],
        [9, 60],
      ],
      20,
    ),
    [
      [5, 0],
      [5, 12],
      [9, 12],
      [9, 60],
    ],
  );
  assert.deepEqual(
    joinOut(
      [
        [9, 40],
        [9, 60],
      ],
      [
        [5, 80],
        [5, 100],
      ],
      80,
    ),
    [
      [9, 40],
      [9, 88],
      [5, 88],
      [5, 100],
    ],
  );
});

test("a run inside repeated blocks is laid out with its block (outermost runs first)", async () => {
  const g = stack(3);
  // two identical sub-blocks inside each block, listed before the outer run
  const inner = [];
  for (let i = 0; i < 3; i++) {
    const b = `b${i}`;
    const at = g.nodes.findIndex((n) => n.id === `${b}a`);
    const subs = [0, 1].map((j) => ({
      id: `${b}x${j}`,
      kind: "module",
      name: `x${j}`,
      type: "Sub",
      path: `layers.${i}.x${j}`,
      parent: b,
      call: 0,
      inputs: [],
      outputs: [{ shape: [1, 4], dtype: "float32" }],
      params: 0,
      params_total: 0,
      flops: null,
      inplace: false,
      error: null,
    }));
    const ops = [0, 1].map((j) => ({
      ...subs[j],
      id: `${b}x${j}.op`,
      kind: "op",
      name: "tanh",
      type: "torch.op",
      parent: `${b}x${j}`,
    }));
    g.nodes.splice(at, 0, subs[0], ops[0], subs[1], ops[1]);
    g.edges.push({ source: `${b}s`, target: `${b}x0.op` }, { source: `${b}x0.op`, target: `${b}x1.op` });
    inner.push([`${b}x0`, `${b}x1`]);
  }
  g.repeats = [...inner, ...g.repeats];
  const idx = indexGraph(g);
  const vis = visibleGraph(idx, all(idx), new Set());
  const plan = planBlocks(idx, vis, { ...opts, size: boxSize });
  assert.deepEqual(
    plan?.blocks.map((b) => b.members.map((m) => m.id)),
    [["b0", "b1", "b2"]],
  );
  const laid = await layoutVisible((x) => new ELK().layout(x), idx, vis, opts);
  assert.deepEqual([...laid.boxes.keys()].sort(), vis.nodes.map((v) => v.id).sort());
});
