// @ts-check
// Drawing only what is on screen: the extents a big graph's items are drawn by (the
// part of the graph the viewport shows, an edge's bounds); lib/graph-lazy.js puts in
// the DOM only the items that meet the viewport's part.
// Pure logic, node-tested in js/tests/graph-cull.test.mjs.

/** @typedef {{x0: number, y0: number, x1: number, y1: number}} Bounds */

/** Bounds of a polyline. @param {number[][]} pts @returns {Bounds} */
export function pathBounds(pts) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const [x, y] of pts) {
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  return { x0, y0, x1, y1 };
}

/**
 * The part of the graph (its own coordinates) the viewport shows, grown by `margin`
 * viewports on each side so that a short pan finds everything drawn already.
 * @param {{x: number, y: number, k: number}} view  screen = view + k * graph
 * @param {number} width @param {number} height viewport size in px
 * @param {number} [margin]
 * @returns {Bounds}
 */
export function viewBounds(view, width, height, margin = 0.5) {
  const x0 = -view.x / view.k;
  const y0 = -view.y / view.k;
  const w = width / view.k;
  const h = height / view.k;
  return { x0: x0 - margin * w, y0: y0 - margin * h, x1: x0 + (1 + margin) * w, y1: y0 + (1 + margin) * h };
}
