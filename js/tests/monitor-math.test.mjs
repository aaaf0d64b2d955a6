import assert from "node:assert/strict";
import { test } from "node:test";
import {
  extent,
  heatPixels,
  logCurves,
  logRange,
  logScale,
  niceTicks,
  nonFiniteSteps,
  smooth,
  strideNote,
  tickFormat,
  tickStep,
  valueRange,
  windowRange,
} from "../src/lib/monitor-math.js";

test("smooth is TensorBoard's debiased moving average", () => {
  const s = smooth([1, 1, 1], 0.9);
  assert.deepEqual(
    [...s].map((v) => +v.toFixed(12)),
    [1, 1, 1],
  ); // debiased: no pull to zero
  const t = smooth([0, 10], 0.5); // last = 0, then 5; debias 0.5, 0.75
  assert.ok(Math.abs(t[0] - 0) < 1e-12 && Math.abs(t[1] - 5 / 0.75) < 1e-12);
  assert.deepEqual([...smooth([3, 4], 0)], [3, 4]); // no smoothing
  // A non-finite point is a gap (NaN), never the last value repeated: a blow-up must not
  // read as a plateau. The average carries on from the finite values around it.
  const u = smooth([2, NaN, Infinity, 2], 0.5);
  assert.ok(Number.isNaN(u[1]) && Number.isNaN(u[2]));
  assert.equal(u[3], 2);
  assert.ok([...smooth([1, 2, NaN, NaN, NaN], 0.6)].slice(2).every(Number.isNaN));
});

test("valueRange pads the extent but keeps losses >= 0 and accuracies <= 1", () => {
  const close = (got, want) => assert.ok(got && got.every((v, i) => Math.abs(v - want[i]) < 1e-9), `${got} != ${want}`);
  close(valueRange([[0.2, 1.2]]), [0.15, 1.25]);
  close(
    valueRange([
      [0.01, 2.0],
      [NaN, Infinity],
    ]),
    [0, 2.0995],
  ); // a loss axis stops at 0
  close(valueRange([[0.5, 0.99]]), [0.4755, 1]); // an accuracy axis stops at 1
  close(valueRange([[-1, 1]]), [-1.1, 1.1]);
  close(valueRange([[2, 2]]), [1.9, 2.1]); // one value: a small band around it
  assert.equal(valueRange([[NaN], []]), null);
});

test("tick formats give distinct, short labels", () => {
  const labels = (lo, hi) => {
    const step = tickStep(lo, hi, 5);
    const fmt = tickFormat(step, Math.max(Math.abs(lo), Math.abs(hi)));
    const digits = Number(/\.(\d+)/.exec(fmt)[1]);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) {
      out.push(fmt.endsWith("e") ? v.toExponential(digits) : v.toFixed(digits));
    }
    return out;
  };
  for (const [lo, hi] of [
    [0, 1],
    [1.0002, 1.0011],
    [0.8, 4.8],
    [1e-6, 9e-6],
    [2e5, 9e5],
    [-0.5, 0.5],
  ]) {
    const l = labels(lo, hi);
    assert.ok(l.length >= 2, `${lo}..${hi}`);
    assert.equal(new Set(l).size, l.length, `duplicate labels ${l} for ${lo}..${hi}`);
    assert.ok(
      l.every((s) => s.length <= 8),
      `long labels ${l}`,
    );
  }
});

test("ticks sit at nice values; a short run's step axis has whole steps", () => {
  assert.deepEqual(niceTicks(0, 5, { whole: true }), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(niceTicks(0, 2, { whole: true }), [0, 1, 2]);
  assert.deepEqual(niceTicks(3, 3, { whole: true }), [3]);
  assert.deepEqual(niceTicks(0, 1000, { whole: true }), [0, 200, 400, 600, 800, 1000]);
  assert.deepEqual(niceTicks(0.72, 2.5), [1, 1.5, 2, 2.5]);
  assert.deepEqual(niceTicks(0.034, 1), [0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(NaN, 1), []);
});

test("the log toggle applies to losses, not to accuracies", () => {
  assert.deepEqual(logCurves({ loss: [2, 1], acc: [0.1, 0.9], val_loss: [3] }), ["loss", "val_loss"]);
  assert.deepEqual(logCurves({ acc: [0.1, 0.9], lr: [1e-1, 1e-4] }), ["lr"]); // no loss: wide curves
});

test("nonFiniteSteps lists the steps of NaN and infinite values", () => {
  assert.deepEqual(nonFiniteSteps([0, 1, 2, 3], [1, NaN, -Infinity, 2]), [1, 2]);
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

test("extent spans several arrays, skips non-finite values, and takes long runs", () => {
  assert.deepEqual(extent([[3, NaN, 1], [], [Infinity, 7]]), [1, 7]);
  assert.equal(extent([[NaN], []]), null);
  const long = new Float64Array(500_000).map((_, i) => i); // too many to spread into Math.min
  assert.deepEqual(extent([long]), [0, 499_999]);
});
