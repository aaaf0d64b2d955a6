import assert from "node:assert/strict";
import { test } from "node:test";
import { overlayFrame } from "../src/lib/overlay.js";

const lut = new Uint8Array(256 * 3);
for (let i = 0; i < 256; i++) lut.set([i, 0, 255 - i], 3 * i); // blue (0) to red (1)
const grey = (n) => new Uint8ClampedArray(n * 4).fill(100);

test("the map's peak gets the colour at the chosen opacity; zero leaves the image", () => {
  const raw = new Uint8Array([0, 0, 0, 255]); // 2 x 2, peak bottom-right
  const { frame, empty } = overlayFrame(grey(16), raw, 2, 2, 4, lut, 1, null);
  assert.equal(empty, false);
  assert.deepEqual([...frame.slice(0, 4)], [100, 100, 100, 255]); // top-left: no evidence
  const last = 4 * 15;
  assert.deepEqual([...frame.slice(last, last + 4)], [255, 0, 0, 255]); // the peak, opaque
});

test("an all-zero map is said to be empty and draws the image as it is", () => {
  const { frame, empty } = overlayFrame(grey(4), new Uint8Array(4), 2, 2, 2, lut, 0.6, null);
  assert.equal(empty, true);
  assert.ok(frame.every((v, i) => v === (i % 4 === 3 ? 255 : 100)));
});

test("a mask's outline is drawn in white, its inside left as it was", () => {
  const mask = { data: new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1, 1]), h: 3, w: 3 };
  const { frame } = overlayFrame(grey(9), new Uint8Array(9), 3, 3, 3, lut, 0.6, mask);
  const centre = 4 * 4;
  assert.deepEqual([...frame.slice(centre, centre + 3)], [100, 100, 100]);
  assert.deepEqual([...frame.slice(0, 3)], [255, 255, 255]);
});
