import assert from "node:assert/strict";
import { test } from "node:test";
import { boxAt, lazyScene, sketch } from "../src/lib/graph-lazy.js";
import { BOX, estimateWidth, indexGraph, visibleGraph } from "../src/lib/graph-view.js";
import { repeated } from "./graph-fixtures.mjs";

/** A layer and its elements: just insertBefore and remove. */
class Layer {
  constructor() {
    this.children = [];
  }
  insertBefore(el, ref) {
    el.parent = this;
    const i = ref ? this.children.indexOf(ref) : -1;
    if (i < 0) this.children.push(el);
    else this.children.splice(i, 0, el);
  }
}
const element = (name) => ({
  name,
  parent: null,
  remove() {
    this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
  },
});

test("lazy scene: only items near the view are in the DOM, each drawn once, in layer order", () => {
  const layers = [new Layer(), new Layer()];
  let made = 0;
  // boxes have an id; edges (layer 0 here) do not
  const item = (name, layer, order, y) => ({
    id: layer === 0 ? null : name,
    layer,
    order,
    bounds: { x0: 0, y0: y, x1: 10, y1: y + 10 },
    make: () => {
      made++;
      return element(name);
    },
  });
  const items = [
    item("e0", 0, 0, 0),
    item("e1", 0, 1, 100),
    item("a", 1, 0, 0),
    item("b", 1, 1, 100),
    item("c", 1, 2, 200),
  ];
  const drawn = [];
  const lazy = lazyScene({ layers, items }, (id) => drawn.push(id));
  const names = (l) => l.children.map((e) => e.name);
  lazy.update({ x0: 0, y0: 90, x1: 10, y1: 150 });
  assert.deepEqual([names(layers[0]), names(layers[1])], [["e1"], ["b"]]);
  lazy.update({ x0: 0, y0: 0, x1: 10, y1: 250 });
  assert.deepEqual(
    [names(layers[0]), names(layers[1])],
    [
      ["e0", "e1"],
      ["a", "b", "c"],
    ],
  ); // order kept
  lazy.update({ x0: 0, y0: 190, x1: 10, y1: 250 }, "a"); // "a": the keyboard's box stays
  assert.deepEqual([names(layers[0]), names(layers[1])], [[], ["a", "c"]]);
  assert.equal(lazy.detached, 3);
  lazy.update(null); // far out: nothing
  assert.deepEqual([names(layers[0]), names(layers[1])], [[], []]);
  assert.equal(lazy.ensure("b").name, "b");
  assert.deepEqual(names(layers[1]), ["b"]);
  lazy.all(); // export: everything
  assert.deepEqual(
    [names(layers[0]), names(layers[1])],
    [
      ["e0", "e1"],
      ["a", "b", "c"],
    ],
  );
  assert.equal(made, 5); // each item drawn once, however often it came and went
  assert.deepEqual(drawn, ["b", "a", "c"]); // boxes (not edges) reported, once each
  assert.equal(lazy.drawn, 5);
  // an export in steps: items drawn a few at a time, out of the DOM, then put in at once
  made = 0;
  const steps = lazyScene({ layers: [new Layer(), new Layer()], items });
  assert.equal(steps.prepare(0), 5);
  assert.equal(steps.prepare(2), 3);
  assert.equal(steps.prepare(5), 0);
  assert.equal(steps.detached, 5);
  steps.all();
  assert.deepEqual([made, steps.drawn, steps.detached], [5, 5, 0]);
});

/** A laid-out view of repeated(): boxes placed in a column, edges straight down. */
function laidOut() {
  const idx = indexGraph(repeated());
  const vis = visibleGraph(idx, new Set(["m0", "m1", "b0", "b1", "b2"]), new Set());
  const boxes = new Map();
  let y = 0;
  for (const v of vis.nodes) {
    boxes.set(v.id, { x: 0, y, width: 100, height: v.open ? 200 : 30 });
    y += v.open ? 40 : 50;
  }
  const paths = new Map(
    vis.edges.map((e) => [
      e.id,
      [
        [50, boxes.get(e.source).y + 30],
        [50, boxes.get(e.target).y],
      ],
    ]),
  );
  return { idx, vis, laid: { boxes, paths } };
}

test("sketch: every box in the path of its look, containers outermost first, every edge with an arrow", () => {
  const { idx, vis, laid } = laidOut();
  const depth = (v) => idx.depth.get(v.id) ?? 0;
  const look = (v) => ({ cls: `k-${v.kind}${v.id === "b1" ? " sel" : ""}`, fill: v.id === "b2" ? "#123456" : "" });
  const sk = sketch(vis, laid, look, depth);
  const count = (d) => (d.match(/M/g) || []).length;
  const boxes = sk.groups.reduce((n, g) => n + count(g.d), 0);
  assert.equal(boxes, vis.nodes.length);
  for (const g of sk.groups) if (g.open) assert.equal(count(g.band), count(g.d)); // a header band per container
  const open = sk.groups.filter((g) => g.open);
  assert.ok(open.length >= 2);
  assert.deepEqual(
    open.map((g) => g.depth),
    open.map((g) => g.depth).sort((a, b) => a - b),
  );
  assert.ok(sk.groups.findIndex((g) => !g.open) > sk.groups.findLastIndex((g) => g.open)); // leaves on top
  assert.ok(sk.groups.some((g) => g.cls.includes("sel")));
  assert.ok(sk.groups.some((g) => g.fill === "#123456"));
  const drawnEdges = vis.edges.filter((e) => (laid.paths.get(e.id) || []).length >= 2).length;
  assert.equal(
    sk.edges.reduce((n, e) => n + count(e.d), 0),
    drawnEdges,
  );
  assert.equal(count(sk.arrows), drawnEdges);
  assert.match(sk.arrows, /^M[\d.-]+,[\d.-]+L/);
  assert.equal(estimateWidth("", "name"), 0);
});

test("boxAt: a leaf before its containers, the innermost container, its header", () => {
  const { idx, vis, laid } = laidOut();
  const depth = (v) => idx.depth.get(v.id) ?? 0;
  const leaf = vis.nodes.find((v) => !v.open && v.kind === "op");
  const b = laid.boxes.get(leaf.id);
  assert.deepEqual(boxAt(vis, laid, b.x + 5, b.y + 5, depth), { id: leaf.id, header: false });
  assert.equal(boxAt(vis, laid, 500, 500, depth), null);
  const open = vis.nodes.filter((v) => v.open).sort((a, c) => depth(c) - depth(a))[0];
  const r = laid.boxes.get(open.id);
  // a point in the innermost container's header, where no leaf is
  const hit = boxAt(vis, laid, r.x + 99, r.y + BOX.header - 1, depth);
  assert.ok(hit && vis.byId.get(hit.id).open);
});
