// @ts-check
// Text helpers shared by the frontends: counts with the right noun form, and labels
// shortened to a budget while staying distinguishable from each other. They return
// plain strings; callers put them in with textContent (or canvas fillText), never HTML.

/** @typedef {(text: string) => number} Measure  width of a text, in the units of the budget */

/** @type {Measure} */
const chars = (text) => text.length;
const ELLIPSIS = "…";

/**
 * "1 sample", "2 samples", "1,200 samples", "0 samples".
 * @param {number} n
 * @param {string} singular
 * @param {string} [pluralForm]  defaults to singular + "s"
 */
export function plural(n, singular, pluralForm = `${singular}s`) {
  return `${n.toLocaleString("en-US")} ${n === 1 ? singular : pluralForm}`;
}

/**
 * A statistic in three significant digits ("0.0123", "457"), or in powers of ten outside
 * 0.01-1000 ("3e-5", "2e+4"); 0, NaN and infinities as they are.
 * @param {number} v
 */
export function formatNumber(v) {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1e-2 && a < 1e3 ? String(+v.toPrecision(3)) : v.toExponential(0);
}

/**
 * The longest prefix of `text` that fits `max` with an ellipsis after it.
 * @param {string} text
 * @param {number} max
 * @param {Measure} [measure]
 */
export function truncateEnd(text, max, measure = chars) {
  if (measure(text) <= max) return text;
  const n = largest(text.length - 1, (k) => measure(text.slice(0, k).trimEnd() + ELLIPSIS) <= max);
  return text.slice(0, n).trimEnd() + ELLIPSIS;
}

/**
 * Keep the start and the end of `text`, an ellipsis in the middle: "handwr…t three".
 * The end gets the larger share (it is where similar names usually differ).
 * @param {string} text
 * @param {number} max
 * @param {Measure} [measure]
 */
export function truncateMiddle(text, max, measure = chars) {
  if (measure(text) <= max) return text;
  const cut = (/** @type {number} */ k) => {
    const head = Math.floor(k * 0.4);
    return text.slice(0, head).trimEnd() + ELLIPSIS + text.slice(text.length - (k - head)).trimStart();
  };
  return cut(largest(text.length - 1, (k) => measure(cut(k)) <= max));
}

/**
 * Short labels for a set of names that stay distinguishable: a name that fits is kept
 * whole; otherwise the part where it first differs from every other name is kept. Names
 * that differ early are cut at the end ("circle wi…", "square wi…"); names that share a
 * long prefix keep their start and the distinguishing rest ("handwrit…three",
 * "handwrit…seven"). Show the full name on hover (a `title`).
 * @param {string[]} names
 * @param {number} max       budget: characters by default, or pixels with a canvas `measure`
 * @param {Measure} [measure]
 * @returns {string[]}
 */
export function shortLabels(names, max, measure = chars) {
  const shared = sharedPrefixes(names);
  const out = names.map((name, i) => shorten(name, shared[i], max, measure));
  // Two different names still look alike (they differ only in the middle of a long
  // stretch that did not fit): fall back to start + end for those.
  /** @type {Map<string, number[]>} */
  const seen = new Map();
  out.forEach((s, i) => {
    seen.set(s, [...(seen.get(s) || []), i]);
  });
  for (const ids of seen.values()) {
    if (ids.length < 2 || ids.every((i) => names[i] === names[ids[0]])) continue;
    for (const i of ids) out[i] = truncateMiddle(names[i], max, measure);
  }
  return out;
}

/**
 * @param {string} name
 * @param {number} p  index of the first character where `name` differs from the most similar other name
 * @param {number} max
 * @param {Measure} measure
 */
function shorten(name, p, max, measure) {
  if (measure(name) <= max) return name;
  if (p >= name.length) return truncateMiddle(name, max, measure); // a duplicate, or a prefix of another name
  const end = truncateEnd(name, max, measure);
  const kept = end.length - ELLIPSIS.length;
  if (kept >= Math.min(p + 3, name.length)) return end; // it differs within what is kept
  // Start of the word holding the first difference (so "three", not "hree").
  let q = p;
  while (q > 0 && p - q < 12 && /[\p{L}\p{N}]/u.test(name[q - 1])) q--;
  const rest = name.slice(q).trimStart();
  if (measure(ELLIPSIS + rest) <= max) {
    let head = largest(q, (k) => measure(name.slice(0, k).trimEnd() + ELLIPSIS + rest) <= max);
    // End the head on a whole word when one fits ("handwritten…three", not "handwritten d…three"):
    // similar names then read alike up to the part that differs.
    const space = name.slice(0, head + 1).search(/\s\S*$/);
    if (head < q && space >= 4) head = space;
    return name.slice(0, head).trimEnd() + ELLIPSIS + rest;
  }
  // Even the distinguishing rest is too long: show its start between two ellipses.
  const m = largest(rest.length, (k) => measure(ELLIPSIS + rest.slice(0, k).trimEnd() + ELLIPSIS) <= max);
  return ELLIPSIS + rest.slice(0, m).trimEnd() + ELLIPSIS;
}

/**
 * For each name, the length of the longest prefix it shares with any other name
 * (sorted neighbours have the longest ones; O(K log K) for K names).
 * @param {string[]} names
 * @returns {number[]}
 */
export function sharedPrefixes(names) {
  const order = names.map((_, i) => i).sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : a - b));
  const out = new Array(names.length).fill(0);
  for (let j = 1; j < order.length; j++) {
    const a = order[j - 1],
      b = order[j];
    const n = commonPrefix(names[a], names[b]);
    out[a] = Math.max(out[a], n);
    out[b] = Math.max(out[b], n);
  }
  return out;
}

/** @param {string} a @param {string} b */
function commonPrefix(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The largest k in [0, hi] with ok(k), for ok true up to some k and false after (ok(0) is assumed).
 * @param {number} hi
 * @param {(k: number) => boolean} ok
 */
function largest(hi, ok) {
  let lo = 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * A dotted module path shortened from the front, whole components first: the end of a
 * path ("block1.conv") is what tells layers apart. "features.block1.conv" -> "…block1.conv".
 * @param {string} path
 * @param {number} max  characters
 */
export function tailPath(path, max) {
  if (path.length <= max) return path;
  const parts = path.split(".");
  while (parts.length > 1) {
    parts.shift();
    const candidate = `${ELLIPSIS}${parts.join(".")}`;
    if (candidate.length <= max) return candidate;
  }
  return ELLIPSIS + path.slice(path.length - max + 1);
}
