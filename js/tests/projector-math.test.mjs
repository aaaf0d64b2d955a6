import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bounds,
  colorValues,
  frameXY,
  frameXY3,
  itemsOfClasses,
  matchClasses,
  neighboursOf,
  palette,
  rotation,
  sphere,
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

test("3-D: the sphere holds every frame's points; a rotation keeps lengths; depth in [0, 1]", () => {
  const coords = Float32Array.from([1, 0, 0, -1, 0, 0, 0, 2, 0, NaN, 0, 0, 0, 0, 3, 0, 0, -3]);
  const ball = sphere(coords); // two frames of three items
  assert.deepEqual([ball.cx, ball.cy, ball.cz], [0, 0.4, 0]);
  assert.ok(Math.abs(ball.r - Math.hypot(0.4, 3)) < 1e-6, "few points: the farthest");
  const cloud = new Float32Array(3 * 1001); // a straggler far out of 1,000 points near 0
  for (let i = 0; i < 1000; i++) cloud[3 * i] = (i % 2) * 2 - 1;
  cloud[3000] = 1000;
  assert.ok(sphere(cloud).r < 100, "a straggler does not shrink the cloud to a dot");
  const rot = rotation(0.7, -0.3);
  for (let i = 0; i < 3; i++) {
    const row = rot.slice(3 * i, 3 * i + 3);
    assert.ok(Math.abs(Math.hypot(...row) - 1) < 1e-12, "rows of unit length");
  }
  const { x, y, depth, shown } = frameXY3(coords, 3, 1, ball, rot, 2, 1);
  assert.deepEqual(shown, [1, 2], "the NaN item is not shown");
  const k = 1 / ball.r; // aspect 2 > 1: the height is the limit
  for (const i of shown) {
    const p = [coords[9 + 3 * i] - ball.cx, coords[9 + 3 * i + 1] - ball.cy, coords[9 + 3 * i + 2] - ball.cz];
    const len2 = x[i] ** 2 + y[i] ** 2 + ((2 * depth[i] - 1) * ball.r * k) ** 2;
    assert.ok(
      Math.abs(len2 - (p[0] ** 2 + p[1] ** 2 + p[2] ** 2) * k * k) < 1e-5,
      "an orthographic view of a rotation",
    );
    assert.ok(depth[i] >= 0 && depth[i] <= 1);
  }
});

test("3-D: no turn shows x and y as they are, z as depth", () => {
  const coords = Float32Array.from([1, 2, 3, -1, -2, -3]);
  const ball = sphere(coords);
  const { x, y, depth } = frameXY3(coords, 2, 0, ball, rotation(0, 0), 1, 1);
  const k = 1 / ball.r;
  assert.ok(Math.abs(x[0] - k) < 1e-6 && Math.abs(y[0] - 2 * k) < 1e-6);
  assert.ok(depth[0] > 0.5 && depth[1] < 0.5, "+z faces the viewer");
});
