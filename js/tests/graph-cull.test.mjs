import assert from "node:assert/strict";
import { test } from "node:test";
import { pathBounds, viewBounds } from "../src/lib/graph-cull.js";

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
