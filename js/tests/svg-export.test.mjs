import assert from "node:assert/strict";
import { test } from "node:test";
import { fileBase, pngScale } from "../src/lib/svg-export.js";

test("fileBase keeps a title readable and safe as a file name", () => {
  assert.equal(fileBase("GPT-style, 12 layers"), "GPT-style_12_layers");
  assert.equal(fileBase("<img src=x onerror=alert(1)>"), "_img_src_x_onerror_alert_1_");
  assert.equal(fileBase(""), "graph");
  assert.equal(fileBase("a".repeat(200)).length, 80);
  assert.equal(fileBase("", "model"), "model");
});

test("pngScale: 2x where canvases allow it, less for huge drawings, never below 0.05", () => {
  assert.equal(pngScale(1000, 800), 2);
  assert.equal(pngScale(16000, 100), 1); // 16,000 px a side at most
  const s = pngScale(20000, 20000);
  assert.ok(20000 * s <= 16000 && 20000 * 20000 * s * s <= 1.2e8 + 1);
  assert.equal(pngScale(1e7, 1e7), 0.05);
});
