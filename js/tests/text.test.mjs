import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatNumber,
  plural,
  sharedPrefixes,
  shortLabels,
  tailPath,
  truncateEnd,
  truncateMiddle,
} from "../src/lib/text.js";

test("plural picks the noun form from the count", () => {
  assert.equal(plural(1, "sample"), "1 sample");
  assert.equal(plural(0, "sample"), "0 samples");
  assert.equal(plural(2, "sample"), "2 samples");
  assert.equal(plural(1200, "sample"), "1,200 samples");
  assert.equal(plural(1, "class", "classes"), "1 class");
  assert.equal(plural(3, "class", "classes"), "3 classes");
});

test("truncateEnd and truncateMiddle keep text that fits and respect the budget", () => {
  assert.equal(truncateEnd("short", 10), "short");
  assert.equal(truncateMiddle("short", 5), "short");
  assert.equal(truncateEnd("handwritten digit three", 10), "handwritt…");
  const m = truncateMiddle("handwritten digit three", 12);
  assert.ok(m.length <= 12, m);
  assert.ok(m.startsWith("hand") && m.endsWith("t three") && m.includes("…"), m);
});

test("sharedPrefixes gives each name's longest prefix in common with another", () => {
  assert.deepEqual(sharedPrefixes(["abcx", "abcy", "b", "abz"]), [3, 3, 0, 2]);
  assert.deepEqual(sharedPrefixes(["same", "same"]), [4, 4]);
  assert.deepEqual(sharedPrefixes(["only"]), [0]);
});

test("names sharing a long prefix stay distinguishable when shortened", () => {
  const names = ["handwritten digit three", "handwritten digit seven", "handwritten digit eight", "cat"];
  const short = shortLabels(names, 14);
  for (const s of short) assert.ok(s.length <= 14, s);
  assert.equal(new Set(short).size, names.length, short.join(" | "));
  assert.ok(short[0].endsWith("three") && short[1].endsWith("seven") && short[2].endsWith("eight"), short.join(" | "));
  assert.ok(short[0].startsWith("hand"), short[0]); // the start still says what kind of name it is
  assert.equal(short[3], "cat"); // fits: unchanged
  // The old end-only cut made them identical:
  assert.equal(truncateEnd(names[0], 14), truncateEnd(names[1], 14));
});

test("the kept start ends on a whole word when one fits", () => {
  const names = [
    "handwritten digit sample of class three",
    "handwritten digit sample of class seven",
    "handwritten digit sample of class nine",
  ];
  assert.deepEqual(shortLabels(names, 20), ["handwritten…three", "handwritten…seven", "handwritten…nine"]);
  assert.deepEqual(shortLabels(names.slice(0, 2), 26), ["handwritten digit…three", "handwritten digit…seven"]);
});

test("names that differ early are cut at the end, as usual", () => {
  const short = shortLabels(["circle with a hole", "square with a hole"], 10);
  assert.deepEqual(short, ["circle wi…", "square wi…"]);
});

test("a long distinguishing rest is shown from where the names differ", () => {
  const names = ["model zoo class alpha centauri system", "model zoo class beta pictoris system"];
  const short = shortLabels(names, 16);
  for (const s of short) assert.ok(s.length <= 16, s);
  assert.ok(short[0].includes("alpha") && short[1].includes("beta"), short.join(" | "));
});

test("names that differ only in the middle fall back to start + end", () => {
  const names = ["layer 1 of the very long encoder stack", "layer 2 of the very long encoder stack"];
  const short = shortLabels(names, 12);
  assert.equal(new Set(short).size, 2, short.join(" | "));
});

test("a pixel budget with a custom measure (as on a canvas)", () => {
  const measure = (/** @type {string} */ s) => 7 * s.length; // a 7 px monospace font
  const short = shortLabels(["handwritten digit three", "handwritten digit seven"], 98, measure);
  for (const s of short) assert.ok(measure(s) <= 98, s);
  assert.notEqual(short[0], short[1]);
});

test("tailPath drops leading components of a module path", () => {
  assert.equal(tailPath("features.block1.conv", 30), "features.block1.conv");
  assert.equal(tailPath("features.block1.conv", 14), "…block1.conv");
  assert.equal(tailPath("encoder.layers.11.attention.out_proj", 20), "…attention.out_proj");
  assert.equal(tailPath("a_very_long_single_name", 8), "…le_name");
});

test("formatNumber keeps three digits in range and powers of ten outside", () => {
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(0.012345), "0.0123");
  assert.equal(formatNumber(456.7), "457");
  assert.equal(formatNumber(-2.5), "-2.5");
  assert.equal(formatNumber(3e-5), "3e-5");
  assert.equal(formatNumber(25000), "3e+4");
  assert.equal(formatNumber(Number.NaN), "NaN");
  assert.equal(formatNumber(-Infinity), "-Infinity");
});
