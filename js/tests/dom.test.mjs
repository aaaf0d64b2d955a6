import assert from "node:assert/strict";
import { test } from "node:test";
import { coalesce, coalesceAsync } from "../src/lib/dom.js";

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

test("coalesceAsync never overlaps runs, and a request during a run makes one more run", async () => {
  /** @type {(() => void)[]} */
  const frames = [];
  const settle = () => new Promise((r) => setTimeout(r, 0)); // every pending promise step
  const nextFrame = async () => {
    await settle();
    frames.shift()?.();
    await settle();
  };
  let active = 0;
  let runs = 0;
  /** @type {() => void} */
  let finish = () => {};
  const layout = coalesceAsync(
    () =>
      new Promise((resolve) => {
        assert.equal(active++, 0, "two runs at once");
        runs++;
        finish = () => {
          active--;
          resolve(undefined);
        };
      }),
    (run) => frames.push(run),
  );
  layout();
  layout();
  assert.equal(frames.length, 1); // one deferred run for both requests
  await nextFrame();
  assert.equal(runs, 1);
  layout(); // while the first runs
  layout();
  assert.equal(frames.length, 0); // nothing queued beside a running layout
  finish();
  await nextFrame(); // the first ended: exactly one more is queued, and runs
  assert.equal(runs, 2);
  finish();
  await nextFrame();
  assert.equal(runs, 2); // nothing asked since: no third run
  assert.equal(frames.length, 0);
});
