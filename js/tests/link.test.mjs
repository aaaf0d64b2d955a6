import assert from "node:assert/strict";
import { test } from "node:test";
import { cellsOf, itemsInCell, joinLink } from "../src/lib/link.js";

test("a view hears the others on its channel, never itself nor another channel", () => {
  const bus = new EventTarget();
  /** @type {any[][]} */
  const heard = [[], [], []];
  const a = joinLink("c1", (m) => heard[0].push(m), bus);
  const b = joinLink("c1", (m) => heard[1].push(m), bus);
  const other = joinLink("c2", (m) => heard[2].push(m), bus);
  a.send({ kind: "cell", cell: [1, 2] });
  assert.deepEqual(heard, [[], [{ kind: "cell", cell: [1, 2] }], []]);
  b.close();
  a.send({ kind: "cell", cell: null });
  assert.equal(heard[1].length, 1, "a closed view hears nothing");
  other.close();
  a.close();
});

test("an empty channel sends and hears nothing", () => {
  const bus = new EventTarget();
  const heard = [];
  const a = joinLink("", (m) => heard.push(m), bus);
  const b = joinLink("", (m) => heard.push(m), bus);
  a.send({ kind: "points", cells: null });
  assert.deepEqual(heard, []);
  a.close();
  b.close();
});

test("items in a cell: true class and this frame's prediction, among the shown items", () => {
  const labels = [0, 0, 1, 1, 0];
  // two frames of 5 items: frame 1 predicts item 1 as class 1
  const predicted = [0, 0, 1, 0, 1, 0, 1, 1, 0, 1];
  assert.deepEqual(itemsInCell(labels, predicted, 5, 0, 0, 1, [0, 1, 2, 3, 4]), [4]);
  assert.deepEqual(itemsInCell(labels, predicted, 5, 1, 0, 1, [0, 1, 2, 3, 4]), [1, 4]);
  assert.deepEqual(itemsInCell(labels, predicted, 5, 1, 0, 1, [0, 2, 3]), [], "hidden items are left out");
  assert.deepEqual(itemsInCell(labels, predicted, 5, 0, 1, 0, [0, 1, 2, 3, 4]), [3]);
});

test("cells of selected items: counts per occupied cell, largest first, unpredicted left out", () => {
  const labels = [0, 0, 1, 1, 0, 2];
  const predicted = [0, 1, 1, 0, 1, -1];
  assert.deepEqual(cellsOf([0, 1, 2, 3, 4, 5], labels, predicted, 6, 0, 3), [
    [0, 1, 2],
    [0, 0, 1],
    [1, 0, 1],
    [1, 1, 1],
  ]);
  assert.deepEqual(cellsOf([], labels, predicted, 6, 0, 3), []);
});
