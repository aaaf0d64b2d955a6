import assert from "node:assert/strict";
import { test } from "node:test";
import { colorTable, parseColor, rgbAt, textColorOn } from "../src/lib/colors.js";

test("viridis runs from dark purple to yellow", () => {
  const t = colorTable();
  assert.deepEqual(rgbAt(t, 0), [68, 1, 84]); // #440154
  assert.deepEqual(rgbAt(t, 1), [253, 231, 37]); // #fde725
});

test("clamps out-of-range and NaN inputs", () => {
  const t = colorTable();
  assert.deepEqual(rgbAt(t, -3), rgbAt(t, 0));
  assert.deepEqual(rgbAt(t, 7), rgbAt(t, 1));
  assert.deepEqual(rgbAt(t, NaN), rgbAt(t, 0));
});

test("luminance grows monotonically along viridis (perceptually ordered)", () => {
  const t = colorTable();
  let last = -1;
  for (let i = 0; i <= 20; i++) {
    const [r, g, b] = rgbAt(t, i / 20);
    const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    assert.ok(y > last, `step ${i}`);
    last = y;
  }
});

test("text colour contrasts with the cell", () => {
  assert.equal(textColorOn([68, 1, 84]), "#fff");
  assert.equal(textColorOn([253, 231, 37]), "#000");
  assert.deepEqual(parseColor("#0a0b0c"), [10, 11, 12]);
  assert.deepEqual(parseColor("rgb(1, 2, 3)"), [1, 2, 3]);
  assert.throws(() => parseColor("blue"), /parse/);
});
