import assert from "node:assert/strict";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import {
  blockGraph,
  joinIn,
  joinOut,
  keepPicture,
  layoutCache,
  layoutVisible,
  nextPictures,
  planBlocks,
} from "../src/lib/graph-blocks.js";
import {
  boxSize,
  estimateWidth,
  ancestors as gvAncestors,
  indexGraph,
  readLayout,
  toElk,
  visibleGraph,
} from "../src/lib/graph-view.js";
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
  assertComplete(laid, vis, ["b0", "b1", "b2", "b3", "b4"]);
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

/** Every box placed, every edge from its source to its target, orthogonal; members apart. */
function assertComplete(laid, vis, members) {
  assert.deepEqual([...laid.boxes.keys()].sort(), vis.nodes.map((v) => v.id).sort());
  const near = (p, r) => p[0] >= r.x - 1 && p[0] <= r.x + r.width + 1 && p[1] >= r.y - 1 && p[1] <= r.y + r.height + 1;
  for (const e of vis.edges) {
    const p = laid.paths.get(e.id);
    assert.ok(p && p.length >= 2, e.id);
    assert.ok(near(p[0], laid.boxes.get(e.source)), `${e.id} starts at its source`);
    assert.ok(near(p[p.length - 1], laid.boxes.get(e.target)), `${e.id} ends at its target`);
    for (let i = 1; i < p.length; i++) assert.ok(p[i - 1][0] === p[i][0] || p[i - 1][1] === p[i][1], e.id);
  }
  const ms = members.map((m) => laid.boxes.get(m));
  for (let i = 1; i < ms.length; i++) assert.ok(ms[i].y >= ms[i - 1].y + ms[i - 1].height);
}

test("a layout assembled from the block cache equals a fresh layout of the same view", async () => {
  const elk = new ELK();
  const lay = (g) => elk.layout(g);
  const idx = indexGraph(stack(5));
  const members = ["b0", "b1", "b2", "b3", "b4"];
  const cache = layoutCache({ patch: false });
  const open = all(idx);
  const first = await layoutVisible(lay, idx, visibleGraph(idx, open, new Set()), { ...opts, cache });
  assert.deepEqual([first.blocks, first.reused, first.outer, cache.blocks.size], [1, 0, "elk", 1]);
  // close a box inside one member (the first: the run's template changes too), then open it again
  for (const changed of ["b0n", "b3n"]) {
    const some = new Set(open);
    some.delete(changed);
    const vis = visibleGraph(idx, some, new Set());
    const cached = await layoutVisible(lay, idx, vis, { ...opts, cache });
    // only the changed member's inside is new (b3 closed like b0 was: that picture is cached too)
    assert.deepEqual([cached.blocks, cached.reused], [2, changed === "b0n" ? 1 : 2]);
    const fresh = await layoutVisible(lay, idx, vis, { ...opts, cache: layoutCache() });
    assert.deepEqual(cached.boxes, fresh.boxes);
    assert.deepEqual(cached.paths, fresh.paths);
    assert.deepEqual([cached.width, cached.height], [fresh.width, fresh.height]);
    assertComplete(cached, vis, members);
    const again = await layoutVisible(lay, idx, visibleGraph(idx, open, new Set()), { ...opts, cache });
    assert.deepEqual([again.blocks, again.reused, again.outer], [1, 1, "cached"]);
    assert.deepEqual(again.boxes, first.boxes);
    assert.deepEqual(again.paths, first.paths);
  }
  assert.equal(cache.blocks.size, 2); // b0 and b3 closed the same way: one picture
});

test("an outer layout patched for a resized member keeps the picture correct", async () => {
  const elk = new ELK();
  const lay = (g) => elk.layout(g);
  const idx = indexGraph(stack(5));
  const members = ["b0", "b1", "b2", "b3", "b4"];
  const cache = layoutCache();
  const open = all(idx);
  const first = await layoutVisible(lay, idx, visibleGraph(idx, open, new Set()), { ...opts, cache });
  for (const changed of ["b3n", "b0n", "b4n"]) {
    const some = new Set(open);
    some.delete(changed);
    const vis = visibleGraph(idx, some, new Set());
    const laid = await layoutVisible(lay, idx, vis, { ...opts, cache });
    assert.equal(laid.outer, "patched", changed);
    assertComplete(laid, vis, members);
    assertApart(idx, laid);
    // nothing above the changed member moved; what is below moved by its change in height
    const was = first.boxes.get(changed.slice(0, -1));
    const now = laid.boxes.get(changed.slice(0, -1));
    for (const [id, r] of first.boxes) {
      if (r.y + r.height < was.y) assert.deepEqual(laid.boxes.get(id), r, id);
      if (r.y > was.y + was.height && laid.boxes.has(id))
        assert.equal(laid.boxes.get(id).y, r.y + now.height - was.height, id);
    }
    // and opening it again gives ELK's own layout back (from the cache)
    const back = await layoutVisible(lay, idx, visibleGraph(idx, open, new Set()), { ...opts, cache });
    assert.equal(back.outer, "cached");
  }
  // a member that grows: laid out closed first (by ELK), then opened
  const grow = layoutCache();
  const some = new Set(open);
  some.delete("b2n");
  await layoutVisible(lay, idx, visibleGraph(idx, some, new Set()), { ...opts, cache: grow });
  const vis = visibleGraph(idx, open, new Set());
  const grown = await layoutVisible(lay, idx, vis, { ...opts, cache: grow });
  assert.equal(grown.outer, "patched");
  assertComplete(grown, vis, members);
  assertApart(idx, grown);
});

/** No two boxes overlap unless one holds the other; the graph holds them all. */
function assertApart(idx, laid) {
  const boxes = [...laid.boxes.entries()];
  const holds = (a, b) => idx.byId.get(b) && gvAncestors(idx, b).includes(a);
  for (const [a, ra] of boxes) {
    assert.ok(ra.x >= 0 && ra.y >= 0 && ra.x + ra.width <= laid.width && ra.y + ra.height <= laid.height, a);
    for (const [b, rb] of boxes) {
      if (a >= b || holds(a, b) || holds(b, a)) continue;
      const apart =
        ra.x + ra.width <= rb.x || rb.x + rb.width <= ra.x || ra.y + ra.height <= rb.y || rb.y + rb.height <= ra.y;
      assert.ok(apart, `${a} and ${b} overlap`);
    }
  }
}

test("pictures laid out ahead make the first click inside a member a cache hit, equal to a fresh layout", async () => {
  const elk = new ELK();
  const lay = (g) => elk.layout(g);
  const idx = indexGraph(stack(5));
  const members = ["b0", "b1", "b2", "b3", "b4"];
  const folded = new Set();
  /** Lays out what nextPictures asks for, as graph.js does in idle time. */
  const prelay = async (vis, expanded, cache) => {
    const toggles = [];
    for (const pic of nextPictures(idx, vis, { ...opts, expanded, folded, cache })) {
      if (!pic) continue; // that click's picture is in the cache
      keepPicture(cache, pic, await lay(pic.graph));
      toggles.push(pic.toggle);
    }
    return toggles;
  };
  // everything open: the template's one open module, closed
  const open = all(idx);
  const cache = layoutCache({ patch: false });
  const vis = visibleGraph(idx, open, folded);
  await layoutVisible(lay, idx, vis, { ...opts, cache });
  assert.deepEqual(await prelay(vis, open, cache), ["b0n"]);
  assert.deepEqual(await prelay(vis, open, cache), []); // all in the cache now
  for (const changed of ["b3n", "b0n"]) {
    const some = new Set(open);
    some.delete(changed);
    const after = visibleGraph(idx, some, folded);
    const cached = await layoutVisible(lay, idx, after, { ...opts, cache });
    assert.deepEqual([cached.blocks, cached.reused], [2, 2], changed);
    const fresh = await layoutVisible(lay, idx, after, { ...opts, cache: layoutCache() });
    assert.deepEqual(cached.boxes, fresh.boxes);
    assert.deepEqual(cached.paths, fresh.paths);
    assert.deepEqual([cached.width, cached.height], [fresh.width, fresh.height]);
    assertComplete(cached, after, members);
    // that view's next pictures (the changed norm open again, a norm closed in another
    // member) are the two already in the cache
    assert.deepEqual(await prelay(after, some, cache), []);
  }
  // the norms closed (they can open): opening one is laid out ahead
  const shallow = new Set(["root", ...members]);
  const cache2 = layoutCache({ patch: false });
  const vis2 = visibleGraph(idx, shallow, folded);
  const first = await layoutVisible(lay, idx, vis2, { ...opts, cache: cache2 });
  assert.equal(first.blocks, 1);
  assert.deepEqual(await prelay(vis2, shallow, cache2), ["b0n"]);
  const opened = visibleGraph(idx, new Set([...shallow, "b2n"]), folded);
  const hit = await layoutVisible(lay, idx, opened, { ...opts, cache: cache2 });
  assert.deepEqual([hit.blocks, hit.reused], [2, 2]);
  const fresh = await layoutVisible(lay, idx, opened, { ...opts, cache: layoutCache() });
  assert.deepEqual(hit.boxes, fresh.boxes);
  assert.deepEqual(hit.paths, fresh.paths);
  assertComplete(hit, opened, members);
  // without blocks (or without a measure) nothing is asked for
  const none = [...nextPictures(idx, vis, { measure: estimateWidth, expanded: open, folded, cache: layoutCache() })];
  assert.deepEqual(none, []); // under MIN_BOXES
  assert.deepEqual([...nextPictures(idx, vis, { minBoxes: 0, expanded: open, folded, cache: layoutCache() })], []);
});
