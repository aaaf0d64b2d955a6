// @ts-check
// Linked views: a confusion matrix and a projector shown in the same page talk to each
// other directly, through window events on a channel that Python gave both
// (`Embeddings.link`), so linking works while the kernel is busy. Every widget's bundle
// has its own copy of this module: the window is what they share.
//
// Messages: {kind: "cell", cell: [true, predicted] | null} from the matrix (a cell was
// selected or cleared); {kind: "points", cells: [[true, predicted, count], ...] | null,
// count} from the projector (where the selected points sit; null: selection cleared).

const EVENT = "nbviz-link";

/**
 * Joins `channel` (an empty channel joins nothing): `send` posts to every other view on
 * it, `onMessage` hears them (never its own); `close` leaves.
 * @param {string} channel
 * @param {(message: any) => void} onMessage
 * @param {EventTarget} [target] the window (a test passes its own)
 */
export function joinLink(channel, onMessage, target = globalThis) {
  const source = Symbol("view");
  /** @param {Event} ev */
  const listener = (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    if (channel && d && d.channel === channel && d.source !== source) onMessage(d.message);
  };
  target.addEventListener(EVENT, listener);
  return {
    /** @param {any} message */
    send(message) {
      if (channel) target.dispatchEvent(new CustomEvent(EVENT, { detail: { channel, source, message } }));
    },
    close() {
      target.removeEventListener(EVENT, listener);
    },
  };
}

/**
 * The shown items whose true class is `row` and predicted class `col` in `frame`.
 * @param {ArrayLike<number>} labels (N,)
 * @param {ArrayLike<number>} predicted (F, N) flat
 * @param {number} n
 * @param {number} frame
 * @param {number} row
 * @param {number} col
 * @param {number[]} shown
 */
export function itemsInCell(labels, predicted, n, frame, row, col, shown) {
  const base = frame * n;
  return shown.filter((i) => labels[i] === row && predicted[base + i] === col);
}

/**
 * Where `items` sit in a K x K confusion matrix in `frame`: [true, predicted, count] per
 * occupied cell, largest first (items without a prediction are left out).
 * @param {number[]} items
 * @param {ArrayLike<number>} labels
 * @param {ArrayLike<number>} predicted (F, N) flat
 * @param {number} n
 * @param {number} frame
 * @param {number} k classes
 * @returns {[number, number, number][]}
 */
export function cellsOf(items, labels, predicted, n, frame, k) {
  /** @type {Map<number, number>} */
  const counts = new Map();
  for (const i of items) {
    const t = labels[i];
    const p = predicted[frame * n + i];
    if (t < 0 || t >= k || p < 0 || p >= k) continue;
    counts.set(t * k + p, (counts.get(t * k + p) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .map(([cell, count]) => [Math.floor(cell / k), cell % k, count]);
}
