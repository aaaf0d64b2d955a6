// @ts-check
// The layer graph's keyboard, as data: what a key does on a box. The view applies it
// (moves the one tab stop, opens, closes, shows details); tests read it without a DOM.
import { canExpand } from "./graph-view.js";

/**
 * @typedef {import("./graph-view.js").GraphIndex} GraphIndex
 * @typedef {import("./graph-view.js").VisGraph} VisGraph
 * @typedef {{move: string} | {unfold: string} | {expand: string} | {collapse: string}
 *   | {details: string} | {none: true}} KeyAction  ids: a box to move to, a run to unfold,
 *   a module to open or close, a graph node whose details to show; none: a key of the
 *   graph's with nothing to do here
 */

/**
 * Arrows (and Home/End) move between the boxes in execution order; Enter or Space opens a
 * module, unfolds repeats, or shows an op's details; Escape closes the open module the
 * keyboard is in (or on), and is kept from the page when there is none. Null for any
 * other key (it is left to the page).
 * @param {GraphIndex} index @param {VisGraph} vis @param {string} nid the focused box
 * @param {string} key KeyboardEvent.key
 * @returns {KeyAction | null}
 */
export function keyAction(index, vis, nid, key) {
  const v = vis.byId.get(nid);
  if (!v) return null;
  const order = vis.nodes.map((x) => x.id);
  const at = order.indexOf(nid);
  switch (key) {
    case "ArrowDown":
    case "ArrowRight":
      return { move: order[Math.min(order.length - 1, at + 1)] };
    case "ArrowUp":
    case "ArrowLeft":
      return { move: order[Math.max(0, at - 1)] };
    case "Home":
      return { move: order[0] };
    case "End":
      return { move: order[order.length - 1] };
    case "Enter":
    case " ":
      if (v.kind === "fold" && v.run) return { unfold: v.run };
      if (v.kind === "module" && !v.open && canExpand(index, nid)) return { expand: nid };
      return { details: v.kind === "fold" ? v.node.id : nid };
    case "Escape": {
      const container = v.open ? nid : v.node.parent;
      if (container != null && vis.byId.get(container)?.open) return { collapse: container };
      return { none: true };
    }
    default:
      return null;
  }
}
