import assert from "node:assert/strict";
import { test } from "node:test";
import { fitView, MAX_ZOOM, MIN_ZOOM, revealView, viewportHeight, wheelFactor, zoomAt } from "../src/lib/viewport.js";

const inside = (v, W, H, gw, gh) =>
  v.x >= -1e-9 && v.y >= -1e-9 && v.x + gw * v.k <= W + 1e-9 && v.y + gh * v.k <= H + 1e-9;

test("fitView: the whole drawing in view when asked, centred", () => {
  const v = fitView(800, 500, 400, 2000, true); // a tall graph
  assert.ok(inside(v, 800, 500, 400, 2000));
  assert.equal(v.k, 0.25);
  assert.equal(v.x, (800 - 400 * 0.25) / 2);
  assert.equal(v.y, 0); // exactly the height
  const wide = fitView(800, 500, 3200, 100, true);
  assert.ok(inside(wide, 800, 500, 3200, 100));
  assert.equal(wide.k, 0.25);
});

test("fitView: the first paint fits the width of a tall graph and starts at its top", () => {
  const v = fitView(800, 500, 400, 2000); // fitting the height would shrink it to 0.25
  assert.equal(v.k, 1); // the width's fit, capped at 100 % when shrinking would be needed
  assert.equal(v.y, 0);
  const small = fitView(800, 500, 100, 50); // small: up to 125 %, centred both ways
  assert.equal(small.k, 1.25);
  assert.ok(inside(small, 800, 500, 100, 50));
  assert.equal(small.y, (500 - 50 * 1.25) / 2);
  assert.equal(fitView(800, 500, 1e9, 1e9, true).k, MIN_ZOOM); // never below the floor
});

test("viewportHeight: between 220 and 640 px", () => {
  assert.equal(viewportHeight(100, 1), 220);
  assert.equal(viewportHeight(400, 1), 408);
  assert.equal(viewportHeight(2000, 1), 640);
});

test("zoomAt keeps the point under the pointer and the zoom within bounds", () => {
  const view = { x: 10, y: 20, k: 1 };
  const z = zoomAt(view, 300, 200, 2);
  assert.equal(z.k, 2);
  // the drawing's point under (300, 200) before is still under it after
  const gx = (300 - view.x) / view.k;
  const gy = (200 - view.y) / view.k;
  assert.equal(z.x + z.k * gx, 300);
  assert.equal(z.y + z.k * gy, 200);
  assert.equal(zoomAt(view, 0, 0, 1e6).k, MAX_ZOOM);
  assert.equal(zoomAt(view, 0, 0, 1e-6).k, MIN_ZOOM);
  assert.ok(wheelFactor(-100, 0) > 1 && wheelFactor(100, 0) < 1); // wheel up zooms in
  assert.equal(wheelFactor(3, 1), wheelFactor(100, 0)); // 3 lines as 100 px
});

test("revealView leaves a visible box alone and brings a hidden one in", () => {
  const view = { x: 0, y: 0, k: 1 };
  const box = { x: 10, y: 10, width: 50, height: 20 };
  assert.equal(revealView(view, box, 800, 500), view); // the same object: nothing to do
  const far = { x: 3000, y: 4000, width: 100, height: 40 };
  const v = revealView(view, far, 800, 500);
  assert.equal(v.k, 1);
  assert.equal(v.x + far.x + far.width / 2, 400); // centred across
  assert.ok(Math.abs(v.y + far.y + far.height / 2 - 500 / 3) < 1e-9); // a third down
});
