// @ts-check
// Pure helpers of the runs overview: which runs a filter shows, each picked run's
// colour and dash, and the curve nearest the pointer.

/**
 * Paul Tol's "bright" qualitative scheme without its grey: distinct for the common
 * colour-vision deficiencies, and mid-light, so each reads on light and dark themes.
 */
export const PALETTE = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377"];
/** Past six picked runs the colours repeat, each round with its own dash pattern. */
export const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

/**
 * Whether `name` passes the filter: every word of it appears in the name (any case);
 * a word that starts with "-" must not appear. An empty filter passes every name.
 * @param {string} name
 * @param {string} filter
 */
export function matches(name, filter) {
  const lower = name.toLowerCase();
  for (const word of filter.toLowerCase().split(/\s+/)) {
    if (!word || word === "-") continue;
    if (word.startsWith("-") ? lower.includes(word.slice(1)) : !lower.includes(word)) return false;
  }
  return true;
}

/**
 * Each picked run's style slot: runs that keep being picked keep their slot (a run's
 * colour never changes under the user's eyes); a newly picked run takes the lowest free.
 * @param {string[]} picked
 * @param {Map<string, number>} previous  run -> slot, as returned before
 * @returns {Map<string, number>}
 */
export function assignSlots(picked, previous) {
  const out = new Map();
  const used = new Set();
  for (const name of picked) {
    const slot = previous.get(name);
    if (slot !== undefined && !used.has(slot)) {
      out.set(name, slot);
      used.add(slot);
    }
  }
  let free = 0;
  for (const name of picked) {
    if (out.has(name)) continue;
    while (used.has(free)) free++;
    out.set(name, free);
    used.add(free);
  }
  return out;
}

/**
 * The colour and dash pattern of a slot.
 * @param {number} slot
 * @returns {{color: string, dash: string}}
 */
export function slotStyle(slot) {
  return { color: PALETTE[slot % PALETTE.length], dash: DASHES[Math.floor(slot / PALETTE.length) % DASHES.length] };
}

/**
 * The point nearest (px, py) over several curves, in screen units (x and y already
 * mapped to pixels), or null when no curve has a finite point.
 * @param {{name: string, xs: ArrayLike<number>, ys: ArrayLike<number>}[]} curves
 * @param {number} px
 * @param {number} py
 * @returns {{name: string, index: number, distance: number} | null}
 */
export function nearestPoint(curves, px, py) {
  let best = null;
  for (const { name, xs, ys } of curves) {
    for (let i = 0; i < xs.length; i++) {
      const dx = xs[i] - px;
      const dy = ys[i] - py;
      const d = dx * dx + dy * dy;
      if (Number.isFinite(d) && (best === null || d < best.distance)) best = { name, index: i, distance: d };
    }
  }
  return best === null ? null : { ...best, distance: Math.sqrt(best.distance) };
}
