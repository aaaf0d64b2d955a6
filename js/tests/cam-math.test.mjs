import { test } from "node:test";
import assert from "node:assert/strict";
import { blend, classChoices, layerMeans, normalise, outline, upsample } from "../src/lib/cam-math.js";

const close = (a, b) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `at ${i}: ${a[i]} vs ${b[i]}`);
};

test("upsample equals torch's bilinear interpolation with align_corners=False", () => {
  // Reference values printed by torch.nn.functional.interpolate.
  close(upsample([0, 1, 2, 3, 4, 5], 2, 3, 4, 5),
    [0, 0.4, 1, 1.6, 2, 0.75, 1.15, 1.75, 2.35, 2.75, 2.25, 2.65, 3.25, 3.85, 4.25, 3, 3.4, 4, 4.6, 5]);
  close(upsample([0, 1, 2, 7], 2, 2, 3, 3), [0, 0.5, 1, 1, 2.5, 4, 2, 4.5, 7]);
  close(upsample([1, 2, 3, 4], 2, 2, 2, 2), [1, 2, 3, 4]); // same size: unchanged
  close(upsample([5], 1, 1, 3, 2), [5, 5, 5, 5, 5, 5]);
});

test("normalise divides by the peak and leaves zero maps alone", () => {
  close(normalise(new Float32Array([0, 2, 4])), [0, 0.5, 1]);
  close(normalise(new Float32Array([0, 0])), [0, 0]);
});

test("blend mixes colour over the image above the threshold only", () => {
  const image = new Uint8ClampedArray([100, 100, 100, 255, 100, 100, 100, 255, 100, 100, 100, 255]);
  const lut = new Uint8Array(256 * 3).fill(0);
  lut.set([200, 0, 50], 3 * 255);
  const out = new Uint8ClampedArray(12);
  blend(image, new Float32Array([1, 0.2, 0]), lut, 0.5, 0.5, out);
  assert.deepEqual([...out.slice(0, 4)], [150, 50, 75, 255]); // blended
  assert.deepEqual([...out.slice(4, 8)], [100, 100, 100, 255]); // below threshold
  assert.deepEqual([...out.slice(8, 12)], [100, 100, 100, 255]); // zero: never coloured
  blend(image, new Float32Array([1, 1, 1]), lut, 0, 0, out);
  assert.deepEqual([...out.slice(0, 4)], [100, 100, 100, 255]); // opacity 0: the image
});

test("outline marks the inside pixels next to the outside", () => {
  const mask = [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]; // 4x4, 2x2 square in the middle
  const e = outline(mask, 4, 4, 8, 8);
  // Scaled 2x: the square covers rows/cols 2..5; its border ring is the outline.
  const ring = [];
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) if (e[y * 8 + x]) ring.push(`${y},${x}`);
  assert.equal(ring.length, 12);
  assert.ok(ring.includes("2,2") && ring.includes("5,5") && !ring.includes("3,3"));
});

test("layerMeans averages one metric over images per layer", () => {
  const a = [[[[1, 0.5, 0.2], [0, 0.3, 0.4]]], null];
  assert.deepEqual(layerMeans(a, 0, 0), [0.5, null]);
  close([layerMeans(a, 0, 1)[0]], [0.4]);
});

test("classChoices lists distinct classes and marks the true one", () => {
  // One image, T = 4: top-3 predictions 2, 0, 5, then the true label 0.
  const c = classChoices([2, 0, 5, 0], [0.7, 0.2, 0.05, 0.2], 4, 0, 3, 0);
  assert.deepEqual(c.map((x) => [x.column, x.cls, x.rank, x.isTrue]), [[0, 2, 1, false], [1, 0, 2, true], [2, 5, 3, false]]);
  // True label outside the top 3: its own entry, unranked.
  const d = classChoices([2, 0, 5, 4], [0.7, 0.2, 0.05, 0.01], 4, 0, 3, 4);
  assert.deepEqual(d.map((x) => [x.column, x.rank, x.isTrue]), [[0, 1, false], [1, 2, false], [2, 3, false], [3, null, true]]);
});
