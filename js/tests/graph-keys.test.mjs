import assert from "node:assert/strict";
import { test } from "node:test";
import { keyAction } from "../src/lib/graph-keys.js";
import { FOLD_PREFIX, indexGraph, visibleGraph } from "../src/lib/graph-view.js";
import { repeated, residual } from "./graph-fixtures.mjs";

test("keys: arrows, Home and End move in execution order, clamped at the ends", () => {
  const index = indexGraph(residual());
  const vis = visibleGraph(index, new Set(["m0"]), new Set());
  const order = vis.nodes.map((v) => v.id);
  const second = order[1];
  assert.deepEqual(keyAction(index, vis, second, "ArrowDown"), { move: order[2] });
  assert.deepEqual(keyAction(index, vis, second, "ArrowRight"), { move: order[2] });
  assert.deepEqual(keyAction(index, vis, second, "ArrowUp"), { move: order[0] });
  assert.deepEqual(keyAction(index, vis, order[0], "ArrowLeft"), { move: order[0] });
  assert.deepEqual(keyAction(index, vis, order.at(-1), "ArrowDown"), { move: order.at(-1) });
  assert.deepEqual(keyAction(index, vis, second, "Home"), { move: order[0] });
  assert.deepEqual(keyAction(index, vis, second, "End"), { move: order.at(-1) });
  assert.equal(keyAction(index, vis, second, "a"), null); // left to the page
  assert.equal(keyAction(index, vis, "nope", "ArrowDown"), null);
});

test("keys: Enter opens a module, unfolds a run, shows an op's details; Escape closes", () => {
  const index = indexGraph(residual());
  const vis = visibleGraph(index, new Set(["m0"]), new Set());
  assert.deepEqual(keyAction(index, vis, "m1", "Enter"), { expand: "m1" }); // collapsed conv
  assert.deepEqual(keyAction(index, vis, "o2", " "), { details: "o2" }); // an op
  assert.deepEqual(keyAction(index, vis, "o2", "Escape"), { collapse: "m0" }); // the box it is in
  assert.deepEqual(keyAction(index, vis, "m0", "Escape"), { collapse: "m0" }); // on the open one
  assert.deepEqual(keyAction(index, vis, "in", "Escape"), { none: true }); // nothing to close
  const rindex = indexGraph(repeated());
  const folded = visibleGraph(rindex, new Set(["m0", "m1"]), new Set(["b0"]));
  const fold = `${FOLD_PREFIX}b0`;
  assert.deepEqual(keyAction(rindex, folded, fold, "Enter"), { unfold: "b0" });
});
