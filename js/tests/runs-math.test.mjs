import assert from "node:assert/strict";
import { test } from "node:test";
import { assignSlots, DASHES, matches, nearestPoint, PALETTE, slotStyle } from "../src/lib/runs-math.js";

test("a filter keeps names holding every word and none of the excluded ones", () => {
  assert.ok(matches("sweep/lr0.1/seed1", ""));
  assert.ok(matches("sweep/lr0.1/seed1", "LR0.1 seed"));
  assert.ok(!matches("sweep/lr0.1/seed1", "lr0.1 seed2"));
  assert.ok(!matches("sweep/lr0.1/seed1", "-seed1"));
  assert.ok(matches("sweep/lr0.1/seed1", "lr -seed2"));
  assert.ok(matches("a", "  - ")); // a lone dash excludes nothing
});

test("a run keeps its colour while picked; a new one takes the lowest free slot", () => {
  const first = assignSlots(["a", "b", "c"], new Map());
  assert.deepEqual(
    [...first],
    [
      ["a", 0],
      ["b", 1],
      ["c", 2],
    ],
  );
  const second = assignSlots(["c", "d"], first); // a and b unpicked: c keeps 2, d takes 0
  assert.deepEqual(
    [...second],
    [
      ["c", 2],
      ["d", 0],
    ],
  );
  const many = assignSlots([..."abcdefghij"], new Map());
  assert.equal(new Set(many.values()).size, 10);
});

test("six distinct colours, then the same colours dashed", () => {
  assert.equal(new Set(PALETTE).size, PALETTE.length);
  const styles = Array.from({ length: PALETTE.length * 2 }, (_, k) => slotStyle(k));
  assert.equal(new Set(styles.map((s) => `${s.color}|${s.dash}`)).size, styles.length);
  assert.equal(styles[0].dash, "");
  assert.equal(styles[PALETTE.length].color, styles[0].color);
  assert.equal(styles[PALETTE.length].dash, DASHES[1]);
});

test("the nearest point over several curves, skipping gaps", () => {
  const curves = [
    { name: "a", xs: [0, 10, 20], ys: [0, 0, 0] },
    { name: "b", xs: [0, 10, 20], ys: [5, NaN, 5] },
  ];
  assert.deepEqual(nearestPoint(curves, 11, 4), { name: "a", index: 1, distance: Math.hypot(1, 4) });
  assert.equal(nearestPoint(curves, 19, 4)?.name, "b");
  assert.equal(nearestPoint([{ name: "c", xs: [1], ys: [NaN] }], 0, 0), null);
});
