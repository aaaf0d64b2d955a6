import assert from "node:assert/strict";
import { test } from "node:test";
import { coalesce } from "../src/lib/dom.js";

test("coalesce runs once per deferral however often it is asked, then again after", async () => {
  let runs = 0;
  const draw = coalesce(() => runs++, queueMicrotask);
  draw();
  draw();
  draw();
  assert.equal(runs, 0); // deferred, not run now
  await Promise.resolve();
  assert.equal(runs, 1);
  draw();
  await Promise.resolve();
  assert.equal(runs, 2);
});
