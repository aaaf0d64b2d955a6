// @ts-check
// Pan and zoom of a drawing in a viewport, as pure functions of a view {x, y, k}: the
// drawing's point (gx, gy) shows at (x + k * gx, y + k * gy). No DOM here, so it is
// unit-tested in node (js/tests/viewport.test.mjs); the graph widget applies the views.

/** @typedef {{x: number, y: number, k: number}} View */
/** @typedef {{x: number, y: number, width: number, height: number}} Box */

// "fit" shows all of an unfolded 70B-sized LLM (about 230,000 px tall) in a cell
export const MIN_ZOOM = 0.002;
export const MAX_ZOOM = 4;

/**
 * The view that fits a drawing of size gw x gh into a viewport W x H, centred. `whole`:
 * all of it, width and height. Otherwise the width, and the height too unless that would
 * shrink the drawing below 85 % of the width's fit (a tall graph then starts at its top,
 * readable). Never above 125 % nor below MIN_ZOOM.
 * @param {number} W @param {number} H @param {number} gw @param {number} gh
 * @param {boolean} [whole]
 * @returns {View}
 */
export function fitView(W, H, gw, gh, whole = false) {
  gw = Math.max(1, gw);
  gh = Math.max(1, gh);
  const kw = Math.min(1.25, W / gw);
  let k = Math.min(kw, H / gh);
  if (!whole && k < 0.85 * Math.min(1, kw)) k = Math.min(1, kw);
  k = Math.max(MIN_ZOOM, k);
  return { x: (W - gw * k) / 2, y: gh * k <= H ? (H - gh * k) / 2 : 0, k };
}

/**
 * The viewport height (px) that shows a drawing gh high at zoom k: between 220 and 640.
 * @param {number} gh @param {number} k
 */
export function viewportHeight(gh, k) {
  return Math.round(Math.min(640, Math.max(220, gh * k + 8)));
}

/**
 * Zoom by `factor` about the viewport point (px, py), which keeps showing the same
 * point of the drawing; the zoom stays within [MIN_ZOOM, MAX_ZOOM].
 * @param {View} view @param {number} px @param {number} py @param {number} factor
 * @returns {View}
 */
export function zoomAt(view, px, py, factor) {
  const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.k * factor));
  return { x: px - ((px - view.x) * k) / view.k, y: py - ((py - view.y) * k) / view.k, k };
}

/**
 * The zoom factor of one wheel event (deltaMode 0: pixels, 1: lines, 2: pages).
 * @param {number} deltaY @param {number} deltaMode
 */
export function wheelFactor(deltaY, deltaMode) {
  const unit = deltaMode === 1 ? 0.05 : deltaMode === 2 ? 1 : 0.0015;
  return Math.exp(-deltaY * unit);
}

/**
 * The view that shows `box` (keeping the zoom): the same view if the box is already
 * wholly in the viewport W x H, else one with the box centred across, a third down.
 * @param {View} view @param {Box} box @param {number} W @param {number} H
 * @returns {View}
 */
export function revealView(view, box, W, H) {
  const x = view.x + view.k * box.x;
  const y = view.y + view.k * box.y;
  if (x >= 0 && y >= 0 && x + view.k * box.width <= W && y + view.k * box.height <= H) return view;
  return {
    x: W / 2 - view.k * (box.x + box.width / 2),
    y: H / 3 - view.k * (box.y + box.height / 2),
    k: view.k,
  };
}
