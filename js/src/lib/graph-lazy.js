// @ts-check
// Drawing a big graph by what is on screen. A layout of thousands of boxes is never
// drawn whole: the scene's items (lib/graph-scene.js planScene) are drawn when they
// first come near the viewport and taken out of the DOM when they leave it, so an
// expand, a pan or a zoom costs what the viewport shows, not what the graph holds.
// Zoomed far out (the whole graph in view), the boxes and edges are drawn as a sketch:
// a few <path>s, one per look (the boxes' classes and fill), instead of thousands of
// elements. Export draws every item first (all()). Pure logic apart from inserting and
// removing elements; node-tested in js/tests/graph-lazy.test.mjs.
import { BOX } from "./graph-view.js";

/**
 * @typedef {import("./graph-cull.js").Bounds} Bounds
 * @typedef {import("./graph-scene.js").SceneItem} SceneItem
 * @typedef {import("./graph-view.js").VisGraph} VisGraph
 * @typedef {import("./graph-view.js").VisNode} VisNode
 * @typedef {{x: number, y: number, width: number, height: number}} Rect
 * @typedef {{boxes: Map<string, Rect>, paths: Map<string, number[][]>}} Laid
 * @typedef {{insertBefore: (el: any, ref: any) => any}} Layer
 * @typedef {{item: SceneItem, el: any, attached: boolean}} Entry
 */

/**
 * The scene's items, drawn on demand. `update(bounds, keep)` puts in the DOM exactly
 * the items that meet `bounds` (none for null) plus the box `keep`, drawing those never
 * drawn; each layer keeps its items in their order. `onDrawn(id, el)` is called once
 * for each box drawn (the view styles it).
 * @param {{layers: Layer[], items: SceneItem[]}} plan
 * @param {(id: string, el: any) => void} [onDrawn]
 */
export function lazyScene(plan, onDrawn = () => undefined) {
  const { layers } = plan;
  /** @type {Entry[]} */
  const entries = plan.items.map((item) => ({ item, el: null, attached: false }));
  /** @type {Map<string, Entry>} */
  const byId = new Map();
  for (const e of entries) if (e.item.id != null) byId.set(e.item.id, e);
  /** @type {Entry[][]} in the DOM, per layer, by order */
  const inDom = layers.map(() => []);
  let drawn = 0;
  let attached = 0; // entries in the DOM (counted as they go: read on every pan frame)

  /** @param {Entry[]} list @param {number} order */
  const position = (list, order) => {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].item.order < order) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** @param {Entry} e */
  const attach = (e) => {
    if (e.attached) return;
    if (!e.el) {
      e.el = e.item.make();
      drawn++;
      if (e.item.id != null) onDrawn(e.item.id, e.el);
    }
    const list = inDom[e.item.layer];
    const at = position(list, e.item.order);
    layers[e.item.layer].insertBefore(e.el, list[at]?.el ?? null);
    list.splice(at, 0, e);
    e.attached = true;
    attached++;
  };
  /** @param {Entry} e */
  const detach = (e) => {
    if (!e.attached) return;
    const list = inDom[e.item.layer];
    list.splice(position(list, e.item.order), 1);
    e.el.remove();
    e.attached = false;
    attached--;
  };

  return {
    /** @param {Bounds | null} r @param {string | null} [keep] */
    update(r, keep = null) {
      for (const e of entries) {
        const b = e.item.bounds;
        const on =
          (keep != null && e.item.id === keep) ||
          (r != null && b.x1 >= r.x0 && b.x0 <= r.x1 && b.y1 >= r.y0 && b.y0 <= r.y1);
        if (on) attach(e);
        else detach(e);
      }
    },
    /** Puts a box in the DOM (until the next update that does not keep it); its element. @param {string} id */
    ensure(id) {
      const e = byId.get(id);
      if (!e) return null;
      attach(e);
      return e.el;
    },
    /** Every item drawn and in the DOM (for export). */
    all() {
      for (const e of entries) attach(e);
    },
    /**
     * Draws up to `n` items never drawn, without putting them in the DOM (an export in
     * steps, the page responsive between them); how many are left to draw.
     * @param {number} n
     */
    prepare(n) {
      let left = 0;
      for (const e of entries) {
        if (e.el) continue;
        if (n-- > 0) {
          e.el = e.item.make();
          drawn++;
          if (e.item.id != null) onDrawn(e.item.id, e.el);
        } else left++;
      }
      return left;
    },
    /** Items drawn so far (each once). */
    get drawn() {
      return drawn;
    },
    /** Items not in the DOM now. */
    get detached() {
      return entries.length - attached;
    },
  };
}

/**
 * @typedef {Object} Look     how a box shows: its classes and its fill (overlay colour or "")
 * @property {string} cls
 * @property {string} fill
 * @typedef {Object} SketchGroup   boxes alike, as one path (boxes) or two (containers)
 * @property {string} cls          classes of the box's <g> (graph.css styles by them)
 * @property {string} fill         the overlay fill, or ""
 * @property {boolean} open       containers: `d` is their outlines, `band` their header bands
 * @property {number} depth       containers are drawn outermost first (their fills add up)
 * @property {string} d
 * @property {string} band
 * @typedef {{edges: {multi: boolean, d: string}[], arrows: string, groups: SketchGroup[]}} Sketch
 */

/** @param {number} x */
const f = (x) => x.toFixed(1);
/** @param {number} x @param {number} y @param {number} w @param {number} h */
const rect = (x, y, w, h) => `M${f(x)},${f(y)}h${f(w)}v${f(h)}h${f(-w)}z`;

/**
 * The whole picture as few paths: every edge as straight polylines (two paths: single
 * and merged edges) with its arrowhead (one path), every box as a rectangle in the path
 * of its look, containers (outline and header band) apart from leaf boxes. Text, badges
 * and buttons are left out (they would be under ~4.5 px).
 * @param {VisGraph} vis @param {Laid} laid
 * @param {(v: VisNode) => Look} look
 * @param {(v: VisNode) => number} depth a container's nesting depth
 * @returns {Sketch}
 */
export function sketch(vis, laid, look, depth) {
  /** @type {Map<string, SketchGroup & {ds: string[], bands: string[]}>} */
  const groups = new Map();
  for (const v of vis.nodes) {
    const b = laid.boxes.get(v.id);
    if (!b) continue;
    const { cls, fill } = look(v);
    const d = v.open ? depth(v) : 0;
    const key = `${v.open}|${d}|${cls}|${fill}`;
    let g = groups.get(key);
    if (!g) {
      g = { cls, fill, open: v.open, depth: d, d: "", band: "", ds: [], bands: [] };
      groups.set(key, g);
    }
    if (v.open) {
      g.ds.push(rect(b.x, b.y, b.width, b.height));
      g.bands.push(rect(b.x, b.y, b.width, Math.min(BOX.header, b.height)));
    } else if (v.kind === "module" || v.kind === "fold") {
      g.ds.push(rect(b.x, b.y, v.kind === "fold" ? b.width - BOX.foldExtra : b.width, BOX.moduleH));
    } else g.ds.push(rect(b.x, b.y, b.width, b.height));
  }
  const out = [...groups.values()].map(({ ds, bands, ...g }) => ({ ...g, d: ds.join(""), band: bands.join("") }));
  // containers first, outermost first; then the leaf boxes (the scene's order)
  out.sort((a, b) => Number(b.open) - Number(a.open) || a.depth - b.depth);
  /** @type {string[][]} */
  const lines = [[], []];
  /** @type {string[]} */
  const arrows = [];
  for (const e of vis.edges) {
    const p = laid.paths.get(e.id);
    if (!p || p.length < 2) continue;
    lines[e.count > 1 ? 1 : 0].push(`M${p.map(([x, y]) => `${f(x)},${f(y)}`).join("L")}`);
    arrows.push(arrowHead(p[p.length - 2], p[p.length - 1]));
  }
  return {
    edges: lines.map((l, i) => ({ multi: i === 1, d: l.join("") })).filter((e) => e.d),
    arrows: arrows.join(""),
    groups: out,
  };
}

/** A 7-px arrowhead at `to`, pointing from `from` (the scene's marker, drawn as a path). @param {number[]} from @param {number[]} to */
function arrowHead(from, to) {
  const dx = to[0] - from[0];
  const dy = to[1] - from[1];
  const l = Math.hypot(dx, dy) || 1;
  const ux = dx / l;
  const uy = dy / l;
  const bx = to[0] - 7 * ux;
  const by = to[1] - 7 * uy;
  return `M${f(to[0])},${f(to[1])}L${f(bx - 2.8 * uy)},${f(by + 2.8 * ux)}L${f(bx + 2.8 * uy)},${f(by - 2.8 * ux)}z`;
}

/**
 * The box under a point (graph coordinates): a leaf box before the containers around
 * it, the innermost container before its parents; `header` when the point is on a
 * container's header band. Null when no box is there.
 * @param {VisGraph} vis @param {Laid} laid @param {number} x @param {number} y
 * @param {(v: VisNode) => number} depth
 * @returns {{id: string, header: boolean} | null}
 */
export function boxAt(vis, laid, x, y, depth) {
  /** @type {{v: VisNode, b: Rect} | null} */
  let best = null;
  for (const v of vis.nodes) {
    const b = laid.boxes.get(v.id);
    if (!b || x < b.x || x > b.x + b.width || y < b.y || y > b.y + b.height) continue;
    if (!v.open) return { id: v.id, header: false };
    if (!best || depth(v) > depth(best.v)) best = { v, b };
  }
  if (!best) return null;
  return { id: best.v.id, header: y <= best.b.y + BOX.header };
}
