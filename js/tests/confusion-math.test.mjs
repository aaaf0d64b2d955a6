import assert from "node:assert/strict";
import { test } from "node:test";
import { denseFromSparse, formatValue, normalize, summary } from "../src/lib/confusion-math.js";

// rows = true, columns = predicted
const K = 3;
const m = Float64Array.from([5, 1, 0, 2, 6, 2, 0, 0, 0]);

test("dense from sparse, including a slice of concatenated epochs", () => {
  const idx = [0, 4, 8, 1, 3];
  const val = [5, 6, 1, 2, 3];
  assert.deepEqual(Array.from(denseFromSparse(K, idx, val, 0, 3)), [5, 0, 0, 0, 6, 0, 0, 0, 1]);
  assert.deepEqual(Array.from(denseFromSparse(K, idx, val, 3, 5)), [0, 2, 0, 3, 0, 0, 0, 0, 0]);
});

test("normalizing over the true class makes rows sum to 1", () => {
  const n = normalize(m, K, "true");
  assert.ok(Math.abs(n[0] + n[1] + n[2] - 1) < 1e-12);
  assert.ok(Math.abs(n[3] - 0.2) < 1e-12);
  assert.deepEqual(Array.from(n.slice(6)), [0, 0, 0]); // empty row stays 0
});

test("normalizing over the predicted class makes columns sum to 1", () => {
  const n = normalize(m, K, "pred");
  assert.ok(Math.abs(n[0] - 5 / 7) < 1e-12 && Math.abs(n[3] - 2 / 7) < 1e-12);
  assert.equal(n[2], 0);
  assert.ok(Math.abs(n[5] - 1) < 1e-12);
  assert.deepEqual(Array.from(normalize(m, K, "none")), Array.from(m));
});

test("accuracy, precision and recall", () => {
  const s = summary(m, K);
  assert.equal(s.total, 16);
  assert.ok(Math.abs(s.accuracy - 11 / 16) < 1e-12);
  assert.ok(Math.abs(s.recall[1] - 0.6) < 1e-12);
  assert.ok(Math.abs(s.precision[1] - 6 / 7) < 1e-12);
  assert.equal(s.recall[2], 0);
  assert.equal(s.precision[2], 0);
  assert.ok(Number.isNaN(summary(new Float64Array(9), K).accuracy));
});

test("cell text: counts as integers, fractions as percentages", () => {
  assert.equal(formatValue(12, "none"), "12");
  assert.equal(formatValue(0.5, "true"), "50%");
  assert.equal(formatValue(0.034, "pred"), "3.4%");
  assert.equal(formatValue(0, "pred"), "0%");
});
