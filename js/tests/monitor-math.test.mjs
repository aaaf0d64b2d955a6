import { test } from "node:test";
import assert from "node:assert/strict";
import { heatPixels, logRange, logScale, smooth, strideNote, windowRange } from "../src/lib/monitor-math.js";

test("smooth is TensorBoard's debiased moving average", () => {
  const s = smooth([1, 1, 1], 0.9);
  assert.deepEqual([...s].map((v) => +v.toFixed(12)), [1, 1, 1]); // debiased: no pull to zero
  const t = smooth([0, 10], 0.5); // last = 0, then 5; debias 0.5, 0.75
  assert.ok(Math.abs(t[0] - 0) < 1e-12 && Math.abs(t[1] - 5 / 0.75) < 1e-12);
  assert.deepEqual([...smooth([3, 4], 0)], [3, 4]); // no smoothing
  const u = smooth([2, NaN, 2], 0.5); // non-finite points repeat the last value
  assert.equal(u[1], 2);
});

test("windowRange keeps the points of the last N steps", () => {
  assert.deepEqual(windowRange([0, 1, 2, 3, 10, 11], 3), [4, 6]);
  assert.deepEqual(windowRange([0, 1, 2], 0), [0, 3]);
  assert.deepEqual(windowRange([5, 6, 7], 100), [0, 3]);
});

test("logRange widens to decades and ignores non-positive values", () => {
  assert.deepEqual(logRange([0.003, 0.2, 0, -1, NaN]), [0.001, 1]);
  assert.equal(logRange([0, -2]), null);
  const u = logScale(0.001, 1);
  assert.ok(Math.abs(u(0.03162) - 0.5) < 1e-3 && u(0) === 0 && Number.isNaN(u(Infinity)));
});

test("heatPixels puts time along x and cells down y", () => {
  const lut = new Uint8Array(256 * 3);
  lut.set([255, 0, 0], 3 * 255);
  // T = 2 time rows of C = 2 cells: row 0 = [1, 0], row 1 = [0, NaN]
  const px = heatPixels([1, 0, 0, NaN], 2, 2, (v) => v, lut);
  assert.deepEqual([...px.slice(0, 4)], [255, 0, 0, 255]); // (t0, c0) = 1: red
  assert.deepEqual([...px.slice(4, 8)], [0, 0, 0, 255]); // (t1, c0) = 0
  assert.deepEqual([...px.slice(12, 16)], [128, 128, 128, 255]); // (t1, c1) NaN: grey
  const flipped = heatPixels([1, 0, 0, NaN], 2, 2, (v) => v, lut, { flip: true });
  assert.deepEqual([...flipped.slice(8, 12)], [255, 0, 0, 255]); // c0 at the bottom
  assert.match(strideNote(4), /mean of 4/);
});
