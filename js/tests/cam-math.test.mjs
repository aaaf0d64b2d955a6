import assert from "node:assert/strict";
import { test } from "node:test";
import {
  availableMetrics,
  axisY,
  bestLayer,
  betterText,
  blend,
  chartTitle,
  classChoices,
  depthSlice,
  emptyMapNote,
  formatScore,
  isEmpty,
  layerMeans,
  linePoints,
  METRICS,
  metricAxis,
  metricNote,
  metricOf,
  normalize,
  outline,
  scale,
  signalRange,
  upsample,
} from "../src/lib/cam-math.js";
import { colorTable } from "../src/lib/colors.js";

const close = (a, b) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `at ${i}: ${a[i]} vs ${b[i]}`);
};

test("upsample equals torch's bilinear interpolation with align_corners=False", () => {
  // Reference values printed by torch.nn.functional.interpolate.
  close(
    upsample([0, 1, 2, 3, 4, 5], 2, 3, 4, 5),
    [0, 0.4, 1, 1.6, 2, 0.75, 1.15, 1.75, 2.35, 2.75, 2.25, 2.65, 3.25, 3.85, 4.25, 3, 3.4, 4, 4.6, 5],
  );
  close(upsample([0, 1, 2, 7], 2, 2, 3, 3), [0, 0.5, 1, 1, 2.5, 4, 2, 4.5, 7]);
  close(upsample([1, 2, 3, 4], 2, 2, 2, 2), [1, 2, 3, 4]); // same size: unchanged
  close(upsample([5], 1, 1, 3, 2), [5, 5, 5, 5, 5, 5]);
});

test("normalize divides by the peak and leaves zero maps alone", () => {
  close(normalize(new Float32Array([0, 2, 4])), [0, 0.5, 1]);
  close(normalize(new Float32Array([0, 0])), [0, 0]);
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

/** One pixel of `image` (RGB) blended with value v. */
const pixel = (rgb, v, lut, opacity, threshold = 0) => {
  const out = new Uint8ClampedArray(4);
  blend(new Uint8ClampedArray([...rgb, 255]), new Float32Array([v]), lut, opacity, threshold, out);
  return [...out.slice(0, 3)];
};
const inferno = colorTable().lut; // any table works; its zero colour is near-black like inferno's
const black = new Uint8Array(256 * 3); // the worst case: colour 0 is pure black

test("blend is continuous at zero: 0 and 0.001 give (nearly) the same pixel", () => {
  for (const lut of [black, inferno]) {
    for (const opacity of [0.3, 0.5, 1]) {
      const zero = pixel([200, 180, 160], 0, lut, opacity);
      const tiny = pixel([200, 180, 160], 1e-3, lut, opacity);
      assert.deepEqual(zero, [200, 180, 160]); // no evidence: the image as it is
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(zero[c] - tiny[c]) <= 1, `${zero} vs ${tiny}`);
    }
  }
});

test("blend has no jump anywhere between 0 and the peak", () => {
  // Sweep the value in small steps: neighbouring values never differ by more than a few levels.
  let prev = pixel([220, 220, 220], 0, black, 0.8);
  for (let i = 1; i <= 1000; i++) {
    const cur = pixel([220, 220, 220], i / 1000, black, 0.8);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(cur[c] - prev[c]) <= 2, `at ${i / 1000}: ${prev} -> ${cur}`);
    prev = cur;
  }
});

test("blend weights the colour by the value: the peak gets the chosen opacity", () => {
  const lut = new Uint8Array(256 * 3).fill(0);
  lut.set([200, 0, 50], 3 * 255);
  lut.set([0, 0, 0], 3 * 128);
  assert.deepEqual(pixel([100, 100, 100], 1, lut, 0.6), [160, 40, 70]); // 100 * 0.4 + colour * 0.6
  // half the peak: half the opacity (0.3), towards colour(0.5) = black
  assert.deepEqual(pixel([100, 100, 100], 0.5, lut, 0.6), [70, 70, 70]);
  // a value above 1 (rounding) is the peak
  assert.deepEqual(pixel([100, 100, 100], 1.0001, lut, 0.6), [160, 40, 70]);
});

test("isEmpty tells an all-zero map", () => {
  assert.equal(isEmpty(new Uint8Array(16)), true);
  assert.equal(isEmpty(new Uint8Array([0, 0, 1, 0])), false);
  assert.equal(isEmpty(new Float32Array(0)), true);
});

test("emptyMapNote explains an empty map per method", () => {
  const cam = emptyMapNote("gradcam", "seven", "features.block4");
  assert.match(cam, /^Empty map: no positive evidence for “seven” at features\.block4\./);
  assert.match(cam, /positive part/);
  assert.match(cam, /early in training/);
  assert.match(emptyMapNote("layercam", "x", "conv"), /Layer-CAM/);
  const sal = emptyMapNote("saliency", "seven", "input");
  assert.match(sal, /gradient is zero/);
  assert.doesNotMatch(sal, / at input/);
  assert.match(emptyMapNote("integrated_gradients", "seven", "input"), /positive attributions/);
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
  const a = [
    [
      [
        [1, 0.5, 0.2],
        [0, 0.3, 0.4],
      ],
    ],
    null,
  ];
  assert.deepEqual(layerMeans(a, 0, 0), [0.5, null]);
  close([layerMeans(a, 0, 1)[0]], [0.4]);
});

test("layerMeans leaves out images without a value, and a layer with none is null", () => {
  const a = [
    [
      [
        [null, null, null, 0.2, 0.6, null],
        [null, null, null, 0.4, 0.8, -0.5],
      ],
    ],
    [[[null, null, null, 0.1, 0.9, null]]],
  ];
  close(layerMeans(a, 0, 3), [0.3, 0.1]);
  assert.deepEqual(layerMeans(a, 0, 5), [-0.5, null]);
  assert.deepEqual(layerMeans(a, 0, 0), [null, null]); // no masks: no pointing game
  assert.deepEqual(layerMeans(a, 1, 3), [null, null]); // no such column
});

const masksOnly = [[[[1, 0.5, 0.2, null, null, null]]], null];
const faithOnly = [[[[null, null, null, 0.2, 0.6, null]]]];
const both = [[[[1, 0.5, 0.2, 0.2, 0.6, 0.1]]]];

test("availableMetrics lists only what was computed, in the selector's order", () => {
  const labels = (/** @type {any[]} */ ms) => ms.map((m) => m.label);
  assert.deepEqual(labels(availableMetrics(masksOnly)), ["energy in mask", "pointing game", "IoU of top 15%"]);
  // The randomised similarity is null for every image here (constant maps): still listed
  // when the settings say faithfulness was computed.
  assert.deepEqual(labels(availableMetrics(faithOnly, true)), [
    "deletion AUC",
    "insertion AUC",
    "similarity to a randomised model",
  ]);
  assert.deepEqual(labels(availableMetrics(faithOnly, false)), ["deletion AUC", "insertion AUC"]);
  assert.equal(availableMetrics(both, true).length, 6);
  assert.deepEqual(availableMetrics([null, null]), []); // no chart at all
  assert.deepEqual(METRICS.map((m) => m.index).sort(), [0, 1, 2, 3, 4, 5]);
});

test("each metric knows which way is better, and bestLayer follows it", () => {
  assert.equal(metricOf(3).better, "lower"); // deletion: a fast fall is faithful
  assert.equal(metricOf(4).better, "higher"); // insertion: a fast rise
  assert.equal(metricOf(5).better, "zero"); // randomised similarity: nearer 0
  for (const i of [0, 1, 2]) assert.equal(metricOf(i).better, "higher");
  const means = [0.3, null, -0.6, 0.05, 0.9];
  assert.equal(bestLayer(means, "higher"), 4);
  assert.equal(bestLayer(means, "lower"), 2);
  assert.equal(bestLayer(means, "zero"), 3);
  assert.equal(bestLayer([null, null], "higher"), -1);
  assert.equal(bestLayer([0.5, 0.5], "lower"), 0); // ties: the first
  assert.equal(betterText("lower"), "lower is better");
  assert.equal(betterText("higher"), "higher is better");
  assert.equal(betterText("zero"), "nearer 0 is better");
});

test("metricAxis spans each metric's range; the randomised similarity goes below 0", () => {
  assert.deepEqual(metricAxis(metricOf(1)), { lo: 0, hi: 1, ticks: [0, 0.5, 1], base: 0 });
  assert.deepEqual(metricAxis(metricOf(3)), { lo: 0, hi: 1, ticks: [0, 0.5, 1], base: 0 });
  const r = metricAxis(metricOf(5));
  assert.deepEqual(r, { lo: -1, hi: 1, ticks: [-1, -0.5, 0, 0.5, 1], base: 0 });
  // y runs from top (hi) to bottom (lo); out-of-range values are clamped.
  assert.equal(axisY(r, 1, 10, 110), 10);
  assert.equal(axisY(r, 0, 10, 110), 60);
  assert.equal(axisY(r, -1, 10, 110), 110);
  assert.equal(axisY(r, -3, 10, 110), 110);
  assert.equal(axisY(metricAxis(metricOf(4)), 0.25, 0, 100), 75);
});

test("the chart's words: no human mask for the faithfulness metrics, the baseline stated", () => {
  assert.match(chartTitle(metricOf(1)), /agreement with the human mask/);
  for (const i of [3, 4, 5]) assert.doesNotMatch(chartTitle(metricOf(i)), /mask/);
  assert.match(chartTitle(metricOf(3)), /per layer/);
  const settings = {
    baseline: "blur (Gaussian, sigma 5 px, 31x31 kernel, edges replicated)",
    steps: 10,
    score: "softmax probability of the explained class",
    seed: 0,
  };
  const del = metricNote(metricOf(3), settings);
  assert.match(del, /replaced by the baseline/);
  assert.match(del, /in 10 steps/);
  assert.match(del, /Baseline: blur \(Gaussian, sigma 5 px, 31x31 kernel, edges replicated\)\.$/);
  assert.match(metricNote(metricOf(4), settings), /revealed on the baseline/);
  assert.match(metricNote(metricOf(5), settings), /Spearman.*seed 0/);
  assert.equal(metricNote(metricOf(1), settings), "");
  assert.equal(formatScore(null), "n/a");
  assert.equal(formatScore(-0.123), "-0.12");
});

test("classChoices lists distinct classes and marks the true one", () => {
  // One image, T = 4: top-3 predictions 2, 0, 5, then the true label 0.
  const c = classChoices([2, 0, 5, 0], [0.7, 0.2, 0.05, 0.2], 4, 0, 3, 0);
  assert.deepEqual(
    c.map((x) => [x.column, x.cls, x.rank, x.isTrue]),
    [
      [0, 2, 1, false],
      [1, 0, 2, true],
      [2, 5, 3, false],
    ],
  );
  // True label outside the top 3: its own entry, unranked.
  const d = classChoices([2, 0, 5, 4], [0.7, 0.2, 0.05, 0.01], 4, 0, 3, 4);
  assert.deepEqual(
    d.map((x) => [x.column, x.rank, x.isTrue]),
    [
      [0, 1, false],
      [1, 2, false],
      [2, 3, false],
      [3, null, true],
    ],
  );
});

test("depthSlice then bilinear upsampling equals torch's trilinear interpolation", () => {
  // Reference: F.interpolate(arange(12).reshape(1, 1, 3, 2, 2), size=(5, 3, 4),
  // mode="trilinear", align_corners=False), slices 1 and 4.
  const src = Array.from({ length: 12 }, (_, i) => i);
  close(
    upsample(depthSlice(src, 3, 2, 2, 1, 5), 2, 2, 3, 4),
    [1.6, 1.85, 2.35, 2.6, 2.6, 2.85, 3.35, 3.6, 3.6, 3.85, 4.35, 4.6],
  );
  close(
    upsample(depthSlice(src, 3, 2, 2, 4, 5), 2, 2, 3, 4),
    [8, 8.25, 8.75, 9, 9, 9.25, 9.75, 10, 10, 10.25, 10.75, 11],
  );
  close(depthSlice(src, 3, 2, 2, 0, 5), [0, 1, 2, 3]); // before the first centre: the first slice
  close(depthSlice(src, 3, 2, 2, 2, 3), [8, 9, 10, 11]); // same depth: the slice itself
});

test("1-D maps upsample linearly as torch's linear interpolation", () => {
  // F.interpolate(tensor([[[0., 4., 2.]]]), size=6, mode="linear", align_corners=False)
  close(upsample([0, 4, 2], 1, 3, 1, 6), [0, 1, 3, 3.5, 2.5, 2]);
});

test("scale multiplies in place", () => {
  close(scale(new Float32Array([0, 255, 51]), 1 / 255), [0, 1, 0.2]);
});

test("signalRange pads the range and copes with flat and empty signals", () => {
  close(signalRange([9, 0, 10, 2, 9], 1, 3), [-0.5, 10.5]); // values 0, 10, 2
  close(signalRange([3, 3], 0, 2), [2.5, 3.5]);
  close(signalRange([-20, -20], 0, 2), [-21, -19]);
  close(signalRange([], 0, 0), [0, 1]);
});

test("linePoints puts each sample at the centre of its share of the width", () => {
  close(linePoints([5, 0, 10, 5], 1, 3, [0, 10], 30, 100), [5, 100, 15, 0, 25, 50]);
});

test("emptyMapNote says when no gradient reached the layer, and for rollout", () => {
  const note = emptyMapNote("gradcam", "seven", "blocks.11", true);
  assert.match(note, /does not depend on blocks\.11 \(its gradient is zero/);
  assert.match(note, /class token/);
  assert.match(emptyMapNote("rollout", "seven", "blocks.2"), /attention rollout/);
  assert.match(emptyMapNote("saliency", "seven", "input", true), /gradient is zero everywhere/);
});
