// Shared by the layout tests (not a test file itself): labelled clusters to lay out, and
// how well a 2-D or 3-D layout keeps them together.
import { mulberry32 } from "../src/lib/projection.js";

/** A seeded standard normal generator (Box-Muller over mulberry32). @param {number} seed */
export function gauss(seed) {
  const r = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/**
 * `k` clusters of `n` points in `d` dims, centres `sep` apart on average; labels.
 * @param {number} n @param {number} d @param {number} k @param {number} sep @param {number} [seed]
 */
export function clusters(n, d, k, sep, seed = 1) {
  const g = gauss(seed);
  const centres = Array.from({ length: k }, () => Array.from({ length: d }, () => sep * g()));
  const vectors = new Float32Array(n * d);
  /** @type {number[]} */
  const labels = [];
  for (let i = 0; i < n; i++) {
    labels.push(i % k);
    for (let j = 0; j < d; j++) vectors[i * d + j] = centres[i % k][j] + g();
  }
  return { vectors, labels };
}

/**
 * The share of each point's `k` nearest points in `layout` (`dims` values a point) that
 * share its label. Brute force: for the tests' few hundred points.
 * @param {ArrayLike<number>} layout
 * @param {ArrayLike<number>} labels
 * @param {number} [k]
 * @param {number} [dims]
 */
export function purity(layout, labels, k = 10, dims = 2) {
  const n = labels.length;
  let same = 0;
  for (let i = 0; i < n; i++) {
    const d = ranked(layout, n, dims, i);
    for (let t = 0; t < k; t++) if (labels[d[t][1]] === labels[i]) same++;
  }
  return same / (n * k);
}

/**
 * Every other point as [squared distance, index], nearest first. Brute force: the
 * reference the tests check neighbour searches and layouts against.
 * @param {ArrayLike<number>} points n points of `dims` coordinates, row by row
 * @param {number} n @param {number} dims @param {number} i
 * @returns {[number, number][]}
 */
export function ranked(points, n, dims, i) {
  /** @type {[number, number][]} */
  const d = [];
  for (let j = 0; j < n; j++) {
    if (j === i) continue;
    let s = 0;
    for (let t = 0; t < dims; t++) s += (points[dims * i + t] - points[dims * j + t]) ** 2;
    d.push([s, j]);
  }
  return d.sort((a, b) => a[0] - b[0]);
}
