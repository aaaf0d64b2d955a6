import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bounds,
  colorValues,
  frameXY,
  itemsOfClasses,
  matchClasses,
  neighboursOf,
  palette,
} from "../src/lib/projector-math.js";

// 2 frames of 3 items; item 2 is left out of frame 0.
const coords = new Float32Array([0, 0, 4, 2, Number.NaN, Number.NaN, -4, 0, 0, 2, 2, -2]);

test("bounds cover every finite point of every frame", () => {
  assert.deepEqual(bounds(coords), { x0: -4, y0: -2, x1: 4, y1: 2 });
  assert.deepEqual(bounds(new Float32Array([Number.NaN, 1])), { x0: -1, y0: -1, x1: 1, y1: 1 });
});

test("frameXY scales every frame by one factor and lists the shown points", () => {
  const box = bounds(coords);
  const f0 = frameXY(coords, 3, 0, box, 1, 1);
  assert.deepEqual(Array.from(f0.x), [0, 1, 0]);
  assert.deepEqual(Array.from(f0.y), [0, 0.5, 0]);
  assert.deepEqual(f0.shown, [0, 1]);
  const f1 = frameXY(coords, 3, 1, box, 1, 1);
  assert.deepEqual(Array.from(f1.x), [-1, 0, 0.5]);
  assert.deepEqual(f1.shown, [0, 1, 2]);
  // a canvas 4 times wider than high: the height binds (y spans [-1, 1])
  const wide = frameXY(coords, 3, 0, box, 4, 1);
  assert.deepEqual(Array.from(wide.x), [0, 2, 0]);
  assert.deepEqual(Array.from(wide.y), [0, 1, 0]);
});

test("colorValues: classes, correct/wrong, confidence 0..1, loss over its max", () => {
  const data = {
    labels: new Int32Array([0, 1, 2]),
    predicted: new Int32Array([0, 2, -1, 0, 1, 2]),
    confidence: new Float32Array([0.5, 0.9, Number.NaN, 1, 1, 1]),
    loss: new Float32Array([1, 4, Number.NaN, 0, 0, 0]),
  };
  assert.deepEqual(Array.from(colorValues("true", data, 3, 1).values), [0, 1, 2]);
  assert.deepEqual(Array.from(colorValues("predicted", data, 3, 0).values), [0, 2, 0]);
  assert.deepEqual(Array.from(colorValues("correct", data, 3, 0).values), [1, 0, 0]);
  assert.deepEqual(Array.from(colorValues("correct", data, 3, 1).values), [1, 1, 1]);
  const conf = colorValues("confidence", data, 3, 0);
  assert.equal(conf.type, "continuous");
  assert.deepEqual(Array.from(conf.values), [0.5, Math.fround(0.9), 0]);
  const loss = colorValues("loss", data, 3, 0);
  assert.deepEqual(Array.from(loss.values), [0.25, 1, 0]);
  assert.equal(loss.max, 4);
  assert.equal(colorValues("loss", { ...data, loss: null }, 3, 0), null);
  assert.equal(colorValues("correct", { ...data, labels: null }, 3, 0), null);
});

test("matchClasses: exact name first, else substrings, case-insensitive", () => {
  const classes = ["circle", "square", "Triangle", "semicircle"];
  assert.deepEqual(matchClasses(classes, "circle"), [0]);
  assert.deepEqual(matchClasses(classes, "CIRC"), [0, 3]);
  assert.deepEqual(matchClasses(classes, "tri"), [2]);
  assert.deepEqual(matchClasses(classes, "  "), []);
});

test("itemsOfClasses uses true labels, else the frame's predictions", () => {
  const labels = new Int32Array([0, 1, 1, 2]);
  const predicted = new Int32Array([2, 2, 2, 2, 1, 1, 0, 0]);
  assert.deepEqual(itemsOfClasses([1], labels, predicted, 4, 0, [0, 1, 3]), [1]);
  assert.deepEqual(itemsOfClasses([1], null, predicted, 4, 1, [0, 1, 2, 3]), [0, 1]);
});

test("neighboursOf reads one item's row of one frame, without padding", () => {
  const near = new Int32Array([1, 2, 0, -1, 0, 1, /* frame 1 */ 2, 1, 2, 0, 1, 0]);
  assert.deepEqual(neighboursOf(near, 3, 2, 0, 1), [0]);
  assert.deepEqual(neighboursOf(near, 3, 2, 1, 0), [2, 1]);
});

test("palette gives distinct hex colours beyond ten", () => {
  const p = palette(25);
  assert.equal(p.length, 25);
  assert.equal(new Set(p).size, 25);
  for (const c of p) assert.match(c, /^#[0-9a-f]{6}$/);
});
