import assert from "node:assert/strict";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import { BOX, estimateWidth, indexGraph, placeLabels, readLayout, toElk, visibleGraph } from "../src/lib/graph-view.js";
import { f32, graphOf } from "./graph-fixtures.mjs";

/**
 * placeLabels without its grid and without merging segments: every obstacle checked
 * against every candidate (the same rules, in O(labels x obstacles)).
 */
function reference(vis, laid, measure, { height = 11, gap = 4, step = 3, header = BOX.header } = {}) {
  const rects = [];
  for (const v of vis.nodes) {
    const b = laid.boxes.get(v.id);
    if (!b) continue;
    if (v.open) {
      rects.push({ x: b.x, y: b.y, width: b.width, height: header });
      rects.push({ x: b.x - 2, y: b.y, width: 4, height: b.height });
      rects.push({ x: b.x + b.width - 2, y: b.y, width: 4, height: b.height });
      rects.push({ x: b.x, y: b.y + b.height - 2, width: b.width, height: 4 });
    } else rects.push({ x: b.x - 2, y: b.y - 2, width: b.width + 4, height: b.height + 4 });
  }
  for (const pts of laid.paths.values())
    for (let i = 0; i + 1 < pts.length; i++) {
      const [x0, y0] = pts[i];
      const [x1, y1] = pts[i + 1];
      rects.push({
        x: Math.min(x0, x1) - 1.5,
        y: Math.min(y0, y1) - 1.5,
        width: Math.abs(x1 - x0) + 3,
        height: Math.abs(y1 - y0) + 3,
      });
    }
  const free = (r) =>
    rects.every((o) => !(r.x < o.x + o.width && o.x < r.x + r.width && r.y < o.y + o.height && o.y < r.y + r.height));
  const out = new Map();
  const done = new Set();
  for (const e of vis.edges) {
    if (!e.label) continue;
    const once = `${e.source}\u0000${e.label}`;
    if (done.has(once)) continue;
    const pts = laid.paths.get(e.id);
    if (!pts) continue;
    const w = measure(e.label, "small") + 2;
    let spot = null;
    for (let i = 0; i + 1 < pts.length && !spot; i++) {
      const [x0, y0] = pts[i];
      const [x1, y1] = pts[i + 1];
      if (Math.abs(x1 - x0) > 0.5 || y1 - y0 < height + 4) continue;
      for (let y = y0 + 2 + height / 2; y <= y1 - 2 - height / 2 && !spot; y += step) {
        const right = { x: x0 + gap, y: y - height / 2, width: w, height };
        if (free(right)) {
          spot = { x: x0 + gap, y, anchor: "start", rect: right };
          break;
        }
        const left = { x: x0 - gap - w, y: y - height / 2, width: w, height };
        if (free(left)) spot = { x: x0 - gap, y, anchor: "end", rect: left };
      }
    }
    if (!spot) continue;
    rects.push(spot.rect);
    done.add(once);
    out.set(e.id, { x: spot.x, y: spot.y, anchor: spot.anchor });
  }
  return out;
}

/** A chain of k blocks inside one module, each fed by one shared input (an LLM's rotary
 * embedding): ELK merges those edges, so their routes share one long trunk. */
function fanOut(k) {
  const nodes = [
    { id: "in", kind: "input", name: "x", type: "Tensor" },
    { id: "root", kind: "module", name: "Net", type: "Net", path: "" },
    { id: "pos", name: "rotary", parent: "root", outputs: [f32([1, 16, 128])] },
  ];
  const edges = [{ source: "in", target: "pos", shape: [1, 16] }];
  let prev = "pos";
  for (let i = 0; i < k; i++) {
    nodes.push({ id: `b${i}`, kind: "module", name: `${i}`, type: "Block", path: `layers.${i}`, parent: "root" });
    nodes.push({ id: `b${i}m`, name: "mul", parent: `b${i}`, outputs: [f32([1, 16, 64])] });
    nodes.push({ id: `b${i}a`, name: "add", parent: `b${i}`, outputs: [f32([1, 16, 64])] });
    edges.push(
      { source: prev, target: `b${i}m`, shape: [1, 16, 64] },
      { source: "pos", target: `b${i}m`, shape: [1, 16, 128] },
      { source: `b${i}m`, target: `b${i}a`, shape: [1, 16, 64] },
      { source: prev, target: `b${i}a`, shape: [1, 16, 64] },
    );
    prev = `b${i}a`;
  }
  nodes.push({ id: "out", kind: "output", name: "y", type: "Tensor" });
  edges.push({ source: prev, target: "out", shape: [1, 16, 64] });
  return graphOf({ nodes, edges });
}

test("placeLabels equals a check of every obstacle, on a laid-out fan-out (routes sharing a trunk)", async () => {
  const idx = indexGraph(fanOut(12));
  const open = new Set([...idx.byId.values()].filter((n) => n.kind === "module").map((n) => n.id));
  const vis = visibleGraph(idx, open, new Set());
  const laid = readLayout(await new ELK().layout(toElk(idx, vis)));
  const spots = placeLabels(vis, laid, estimateWidth);
  assert.ok(spots.size >= 12, `${spots.size} labels`);
  assert.deepEqual(spots, reference(vis, laid, estimateWidth));
});

test("placeLabels equals a check of every obstacle, on random routes (overlapping, touching, beyond the edges)", () => {
  let seed = 7;
  /** 0 .. n-1 (mulberry32) @param {number} n */
  const rand = (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  const measure = (t) => t.length * 6;
  let labels = 0;
  for (let round = 0; round < 200; round++) {
    const nodes = [];
    const boxes = new Map();
    for (let i = 0; i < 3; i++) {
      nodes.push({ id: `n${i}`, open: rand(2) === 0 });
      boxes.set(`n${i}`, { x: rand(400) - 20, y: rand(1500) - 20, width: 20 + rand(100), height: 20 + rand(200) });
    }
    const edges = [];
    const paths = new Map();
    for (let i = 0; i < 50; i++) {
      // runs down a few shared lines 30 px apart (a label beside one meets the next line
      // unless it has a gap there), collinear runs overlapping, touching or apart, some jogs
      const x = 30 * rand(15) - 15;
      let y = 5 * rand(300) - 15;
      const pts = [[x, y]];
      for (let j = rand(2); j >= 0; j--) {
        y += 5 * (2 + rand(20));
        pts.push([pts[pts.length - 1][0], y]);
        if (rand(3) === 0) pts.push([pts[pts.length - 1][0] + 30 * (rand(3) - 1), y]);
      }
      paths.set(`e${i}`, pts);
      edges.push({ id: `e${i}`, source: `n${rand(3)}`, target: `n${rand(3)}`, label: rand(4) ? `${rand(50)}×64` : "" });
    }
    const vis = { nodes, edges };
    const spots = placeLabels(vis, { boxes, paths }, measure);
    assert.deepEqual(spots, reference(vis, { boxes, paths }, measure), `round ${round}`);
    labels += spots.size;
  }
  assert.ok(labels > 1000, `${labels} labels placed`);
});
