import assert from "node:assert/strict";
import { test } from "node:test";
import { culler, pathBounds, viewBounds } from "../src/lib/graph-cull.js";

test("the viewport's part of the graph, with a margin", () => {
  assert.deepEqual(viewBounds({ x: -100, y: -50, k: 2 }, 200, 100, 0), { x0: 50, y0: 25, x1: 150, y1: 75 });
  assert.deepEqual(viewBounds({ x: 0, y: 0, k: 1 }, 200, 100), { x0: -100, y0: -50, x1: 300, y1: 150 });
  assert.deepEqual(
    pathBounds([
      [3, 9],
      [3, 2],
      [7, 2],
    ]),
    { x0: 3, y0: 2, x1: 7, y1: 9 },
  );
});

test("only items whose state changes are returned; kept items never hide", () => {
  const box = (name, y) => ({ item: name, bounds: { x0: 0, y0: y, x1: 10, y1: y + 10 } });
  const c = culler([box("a", 0), box("b", 100), box("c", 200)]);
  assert.deepEqual(c.update({ x0: 0, y0: 0, x1: 50, y1: 50 }), { show: [], hide: ["b", "c"] });
  assert.equal(c.hidden, 2);
  assert.deepEqual(c.update({ x0: 0, y0: 0, x1: 50, y1: 50 }), { show: [], hide: [] });
  assert.deepEqual(c.update({ x0: 0, y0: 95, x1: 50, y1: 150 }), { show: ["b"], hide: ["a"] });
  assert.deepEqual(c.update({ x0: 0, y0: 95, x1: 50, y1: 150 }, "c"), { show: ["c"], hide: [] });
  assert.deepEqual(c.all().sort(), ["a"]);
  assert.equal(c.hidden, 0);
});
