// @ts-check
// Drawing only what is on screen: SVG text is what costs when a big graph pans (each
// frame repaints every label), so boxes, edges and labels far outside the viewport are
// hidden with `visibility` (their geometry stays: bounding boxes, export and hit tests
// of what shows are unchanged), and only those whose state changes are touched.
// Pure logic, node-tested in js/tests/graph-cull.test.mjs.

/** @typedef {{x0: number, y0: number, x1: number, y1: number}} Bounds */
/**
 * @template T
 * @typedef {{item: T, bounds: Bounds, shown: boolean}} Entry
 */

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

/**
 * Keeps track of which items show. `update(rect)` returns the items to show and to
 * hide now (all start shown); `all()` shows everything again (for export).
 * @template T
 * @param {{item: T, bounds: Bounds}[]} items
 */
export function culler(items) {
  /** @type {Entry<T>[]} */
  const entries = items.map((e) => ({ item: e.item, bounds: e.bounds, shown: true }));
  return {
    /** @param {Bounds} r @param {T | null} [keep] an item never hidden (the keyboard's box) */
    update(r, keep = null) {
      /** @type {T[]} */ const show = [];
      /** @type {T[]} */ const hide = [];
      for (const e of entries) {
        const b = e.bounds;
        const on = e.item === keep || (b.x1 >= r.x0 && b.x0 <= r.x1 && b.y1 >= r.y0 && b.y0 <= r.y1);
        if (on === e.shown) continue;
        e.shown = on;
        (on ? show : hide).push(e.item);
      }
      return { show, hide };
    },
    all() {
      /** @type {T[]} */ const show = [];
      for (const e of entries) {
        if (!e.shown) show.push(e.item);
        e.shown = true;
      }
      return show;
    },
    get hidden() {
      let n = 0;
      for (const e of entries) if (!e.shown) n++;
      return n;
    },
  };
}
