import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import { elkLayout } from "../src/lib/graph-elk.js";

const code = readFileSync(createRequire(import.meta.url).resolve("elkjs/lib/elk-worker.min.js"), "utf8");
const graph = () => ({
  id: "root",
  layoutOptions: { "elk.algorithm": "layered", "elk.direction": "DOWN" },
  children: [
    { id: "a", width: 40, height: 20 },
    { id: "b", width: 60, height: 20 },
    { id: "c", width: 30, height: 20 },
  ],
  edges: [
    { id: "ab", sources: ["a"], targets: ["b"] },
    { id: "ac", sources: ["a"], targets: ["c"] },
  ],
});

test("the worker's script run in the page lays out as the bundled ELK does", async () => {
  const elk = elkLayout(code, { worker: false });
  assert.equal(elk.where(), "page");
  const a = await elk.layout(graph());
  const b = await new ELK().layout(graph());
  assert.deepEqual(a, b);
  assert.ok(a.children.every((c) => Number.isFinite(c.x) && Number.isFinite(c.y)));
});
