// @ts-check
// The layer graph's picture: SVG boxes, edges and edge labels for a laid-out view, built
// from explicit inputs (the graph's index, the visible graph, ELK's layout, a text
// measure). Class names and data-* attributes here are what graph.css styles, what the
// restyle step and the event handlers look up, and what the browser tests read.
import { css, rgbAt, textColorOn } from "./colors.js";
import { el as h, svgEl as s } from "./dom.js";
import { pathBounds } from "./graph-cull.js";
import * as gv from "./graph-view.js";
import { truncateEnd } from "./text.js";

/**
 * @typedef {import("./graph-view.js").GraphIndex} GraphIndex
 * @typedef {import("./graph-view.js").VisGraph} VisGraph
 * @typedef {import("./graph-view.js").VisNode} VisNode
 * @typedef {import("./graph-view.js").Measure} Measure
 * @typedef {import("./colors.js").ColorTable} ColorTable
 * @typedef {ReturnType<typeof gv.readLayout>} Layout
 * @typedef {{x: number, y: number, width: number, height: number}} Box
 * @typedef {(text: string, font: "name" | "op" | "type" | "small", maxW: number) => string} FitText
 */

const BOX = gv.BOX;

/** The CSS font of each text role (the family comes from the page). */
export const FONTS = {
  name: "600 12px",
  op: "600 11px",
  type: "11px",
  small: "10px",
};

/**
 * @typedef {import("./graph-cull.js").Bounds} Bounds
 * @typedef {Object} SceneItem      one box, edge or edge label, not yet drawn
 * @property {string | null} id     the box's vis id (null for edges and labels)
 * @property {number} layer         index into the scene's layers
 * @property {number} order         its place in its layer, bottom to top
 * @property {Bounds} bounds        its extent, in graph coordinates
 * @property {() => SVGElement} make draws it (each call a new element)
 * @typedef {{index: GraphIndex, vis: VisGraph, laid: Layout, measure: Measure, markerId: string,
 *   errorNode: string | null}} SceneInput  markerId: the arrowhead <marker>'s id
 */

/**
 * The scene's four layers, bottom to top, empty, and every item to draw in them: the
 * view draws all of them (drawScene), or of a big graph only those near the viewport
 * (lib/graph-lazy.js). Edges go under the (translucent) containers: a header band is
 * never crossed by a line over its text; nested containers come after their parents.
 * @param {SceneInput} input
 * @returns {{layers: SVGElement[], items: SceneItem[]}} items sorted by layer, then order
 */
export function planScene({ index, vis, laid, measure, markerId, errorNode }) {
  /** @type {FitText} */
  const fitText = (text, font, maxW) => truncateEnd(text, maxW, (t) => measure(t, font));
  const layers = [
    s("g", { class: "nbviz-graph__edges" }),
    s("g", { class: "nbviz-graph__containers" }),
    s("g", { class: "nbviz-graph__edge-labels" }),
    s("g", { class: "nbviz-graph__leaves" }),
  ];
  /** @type {SceneItem[][]} */
  const byLayer = [[], [], [], []];
  /** @param {VisNode} v @param {number} layer */
  const box = (v, layer) => {
    const b = /** @type {Box} */ (laid.boxes.get(v.id));
    if (!b) return;
    byLayer[layer].push({
      id: v.id,
      layer,
      order: byLayer[layer].length,
      bounds: { x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height },
      make: () => drawNode(index, v, b, errorNode, measure, fitText),
    });
  };
  const open = vis.nodes.filter((v) => v.open);
  open.sort((a, b) => (index.depth.get(a.id) ?? 0) - (index.depth.get(b.id) ?? 0));
  for (const v of open) box(v, 1);
  for (const v of vis.nodes) if (!v.open) box(v, 3);

  const spots = gv.placeLabels(vis, laid, measure);
  for (const e of vis.edges) {
    const pts = laid.paths.get(e.id);
    if (!pts || pts.length < 2) continue;
    byLayer[0].push({
      id: null,
      layer: 0,
      order: byLayer[0].length,
      bounds: pathBounds(pts),
      make: () => {
        const p = s("path", { class: "nbviz-graph__edge", d: roundedPath(pts, 5), "marker-end": `url(#${markerId})` });
        p.dataset.source = e.source;
        p.dataset.target = e.target;
        if (e.count > 1) p.classList.add("nbviz-graph__edge--multi");
        return p;
      },
    });
    const spot = spots.get(e.id);
    if (spot) {
      const w = measure(e.label, "small");
      const x0 = spot.anchor === "end" ? spot.x - w : spot.x;
      byLayer[2].push({
        id: null,
        layer: 2,
        order: byLayer[2].length,
        bounds: { x0, y0: spot.y - 8, x1: x0 + w, y1: spot.y + 8 },
        make: () => {
          /** @type {Record<string, string>} */
          const attrs = { class: "nbviz-graph__edge-label", x: spot.x.toFixed(1), y: spot.y.toFixed(1) };
          if (spot.anchor === "end") attrs["text-anchor"] = "end";
          return s("text", attrs, e.label);
        },
      });
    }
  }
  return { layers, items: byLayer.flat() };
}

/**
 * The whole scene, every item drawn: its four layers (see planScene) and the <g> of
 * every visible box by id.
 * @param {SceneInput} input
 * @returns {{layers: SVGElement[], groups: Map<string, SVGGElement>}}
 */
export function drawScene(input) {
  const { layers, items } = planScene(input);
  /** @type {Map<string, SVGGElement>} */
  const groups = new Map();
  for (const it of items) {
    const el = it.make();
    layers[it.layer].appendChild(el);
    if (it.id != null) groups.set(it.id, /** @type {SVGGElement} */ (el));
  }
  return { layers, groups };
}

/**
 * A box's modifier classes (what graph.css styles its shape by; the overlay, matches and
 * the selection add theirs when the view restyles).
 * @param {VisNode} v @param {string | null} errorNode
 */
export function nodeClasses(v, errorNode) {
  const kindClass = v.kind === "fold" || v.kind === "module" ? "module" : v.kind === "op" ? "op" : "io";
  const out = [`nbviz-graph__node--${kindClass}`];
  if (v.kind === "input" || v.kind === "output") out.push(`nbviz-graph__node--${v.kind}`);
  if (v.open) out.push("nbviz-graph__node--expanded");
  if (v.kind === "fold") out.push("nbviz-graph__node--folded");
  if (v.node.inplace) out.push("nbviz-graph__node--inplace");
  const isError =
    (errorNode != null && (v.id === errorNode || (v.members || []).includes(errorNode))) || !!v.node.error;
  if (isError) out.push("nbviz-graph__node--error");
  return out;
}

/**
 * One box: a <g> translated to its place, with data-id/data-path and state classes.
 * @param {GraphIndex} idx @param {VisNode} v @param {Box} b its place
 * @param {string | null} errorNode @param {Measure} measure @param {FitText} fitText
 */
function drawNode(idx, v, b, errorNode, measure, fitText) {
  const n = v.node;
  const g = /** @type {SVGGElement} */ (s("g", { transform: `translate(${b.x.toFixed(1)},${b.y.toFixed(1)})` }));
  g.setAttribute("class", `nbviz-graph__node ${nodeClasses(v, errorNode).join(" ")}`);
  g.dataset.id = v.id;
  g.dataset.path = n.path;
  g.dataset.kind = v.kind;
  if (v.members) g.dataset.members = String(v.members.length);
  const expandable = v.kind === "module" && gv.canExpand(idx, v.id);
  if (expandable) g.classList.add("nbviz-graph__node--expandable");
  const t = gv.boxText(idx, v);
  // Keyboard: one tab stop (roving tabindex, see paint), arrows move, Enter opens.
  g.setAttribute("tabindex", "-1");
  g.setAttribute("role", "button");
  if (expandable || v.open) g.setAttribute("aria-expanded", String(!!v.open));
  const spoken = [t.title, v.kind === "fold" ? `${t.badge} repeats of ${n.type}` : t.subtitle, t.detail];
  g.setAttribute("aria-label", spoken.filter(Boolean).join(", "));
  const w = b.width;
  const hgt = b.height;
  const tip = [
    n.kind === "module" ? n.path || n.name : `${n.name} (${n.type})`,
    n.kind === "module" ? n.type : n.path ? `in ${n.path}` : "",
  ]
    .filter(Boolean)
    .join(" · ");
  g.appendChild(s("title", {}, v.kind === "fold" ? `${t.title} (${t.badge}) · ${n.type}` : tip));

  if (v.open) {
    g.appendChild(s("rect", { class: "nbviz-graph__container", width: w, height: hgt, rx: 6 }));
    const head = s("g", { class: "nbviz-graph__header", "data-action": "collapse" });
    head.appendChild(
      s("path", {
        class: "nbviz-graph__header-band",
        d: `M0,${BOX.header} V6 Q0,0 6,0 H${w - 6} Q${w},0 ${w},6 V${BOX.header} Z`,
      }),
    );
    const refold = v.run !== undefined ? BOX.badge : 0;
    const room = w - 2 * BOX.padX - BOX.info - refold - BOX.chevron;
    const text = s("text", { class: "nbviz-graph__label", x: BOX.padX, y: 18 });
    text.appendChild(s("tspan", { class: "nbviz-graph__chevron" }, "▾ "));
    const nameText = fitText(t.title, "name", room);
    text.appendChild(s("tspan", { class: "nbviz-graph__name" }, nameText));
    const left = room - measure(nameText, "name") - 8;
    if (left > 20)
      text.appendChild(s("tspan", { class: "nbviz-graph__type", dx: 8 }, fitText(t.subtitle, "type", left)));
    const left2 = left - measure(t.subtitle, "type") - 8;
    if (left2 > 30 && t.detail)
      text.appendChild(s("tspan", { class: "nbviz-graph__detail", dx: 6 }, fitText(`· ${t.detail}`, "small", left2)));
    head.appendChild(text);
    g.appendChild(head);
    if (refold) g.appendChild(refoldBadge(idx, v, w - BOX.info - BOX.badge - 2, 5));
    g.appendChild(infoButton(w - 11, 14));
    g.dataset.fill = "header";
    return g;
  }

  if (v.kind === "module" || v.kind === "fold") {
    const fold = v.kind === "fold";
    const bw = fold ? w - BOX.foldExtra : w;
    const bh = BOX.moduleH;
    if (fold) {
      g.appendChild(s("rect", { class: "nbviz-graph__stack", x: 6, y: 6, width: bw, height: bh, rx: 4 }));
      g.appendChild(s("rect", { class: "nbviz-graph__stack", x: 3, y: 3, width: bw, height: bh, rx: 4 }));
    }
    g.appendChild(s("rect", { class: "nbviz-graph__box", width: bw, height: bh, rx: 4 }));
    const refold = !fold && v.run !== undefined ? BOX.badge : 0;
    const right = (fold ? BOX.badge : 0) + refold + BOX.info;
    const chevron = expandable ? BOX.chevron : 0;
    const room = bw - 2 * BOX.padX - right - chevron;
    const line1 = s("text", { class: "nbviz-graph__label", x: BOX.padX, y: 16 });
    if (expandable) line1.appendChild(s("tspan", { class: "nbviz-graph__chevron" }, "▸ "));
    const nameText = fitText(t.title, "name", room);
    line1.appendChild(s("tspan", { class: "nbviz-graph__name" }, nameText));
    const left = room - measure(nameText, "name") - 8;
    if (left > 16)
      line1.appendChild(s("tspan", { class: "nbviz-graph__type", dx: 8 }, fitText(t.subtitle, "type", left)));
    g.appendChild(line1);
    if (t.detail)
      g.appendChild(
        s(
          "text",
          { class: "nbviz-graph__detail", x: BOX.padX, y: 31 },
          fitText(t.detail, "small", bw - 2 * BOX.padX - right + BOX.info),
        ),
      );
    if (fold) {
      const bg = s("g", {
        class: "nbviz-graph__badge",
        "data-action": "unfold",
        transform: `translate(${bw - BOX.badge - 4},${bh / 2 - 9})`,
      });
      bg.appendChild(s("title", {}, `show the ${(v.members || []).length} repeats one by one`));
      bg.appendChild(s("rect", { width: BOX.badge, height: 18, rx: 9 }));
      bg.appendChild(s("text", { x: BOX.badge / 2, y: 13 }, t.badge));
      g.appendChild(bg);
    } else {
      if (refold) g.appendChild(refoldBadge(idx, v, bw - BOX.info - BOX.badge, bh / 2 - 9));
      g.appendChild(infoButton(bw - 10, 11));
    }
    g.dataset.fill = "box";
    return g;
  }

  // op / input / output
  const io = v.kind !== "op";
  g.appendChild(s("rect", { class: "nbviz-graph__box", width: w, height: hgt, rx: io ? hgt / 2 : 3 }));
  const x0 = BOX.padX + (io ? 4 : 0);
  const text = s("text", { class: "nbviz-graph__label", x: x0, y: io ? 17 : 16 });
  const nameFont = io ? "name" : "op";
  const nameText = fitText(t.title, nameFont, w - 2 * x0);
  text.appendChild(s("tspan", { class: "nbviz-graph__name" }, nameText));
  const left = w - 2 * x0 - measure(nameText, nameFont) - 6;
  if (t.detail && left > 16)
    text.appendChild(s("tspan", { class: "nbviz-graph__detail", dx: 6 }, fitText(t.detail, "small", left)));
  g.appendChild(text);
  return g;
}

/** @param {number} x @param {number} y */
function infoButton(x, y) {
  const g = s("g", { class: "nbviz-graph__info", "data-action": "info", transform: `translate(${x},${y})` });
  g.appendChild(s("title", {}, "details"));
  g.appendChild(s("circle", { r: 6.5 }));
  g.appendChild(s("text", { y: 3.5 }, "i"));
  return g;
}

/** @param {GraphIndex} idx @param {VisNode} v @param {number} x @param {number} y */
function refoldBadge(idx, v, x, y) {
  const members = idx.runs.get(/** @type {string} */ (v.run)) || [];
  const i = members.indexOf(v.id);
  const g = s("g", {
    class: "nbviz-graph__badge nbviz-graph__badge--refold",
    "data-action": "refold",
    transform: `translate(${x},${y})`,
  });
  g.appendChild(s("title", {}, `fold the ${members.length} repeats back into one box`));
  g.appendChild(s("rect", { width: BOX.badge - 4, height: 18, rx: 9 }));
  g.appendChild(s("text", { x: (BOX.badge - 4) / 2, y: 13 }, `${i + 1}/${members.length}`));
  return g;
}

/**
 * An orthogonal polyline with rounded corners.
 * @param {number[][]} pts @param {number} r
 */
export function roundedPath(pts, r) {
  let d = `M${pts[0][0].toFixed(1)},${pts[0][1].toFixed(1)}`;
  for (let i = 1; i < pts.length - 1; i++) {
    const [x0, y0] = pts[i - 1];
    const [x1, y1] = pts[i];
    const [x2, y2] = pts[i + 1];
    const l1 = Math.hypot(x1 - x0, y1 - y0);
    const l2 = Math.hypot(x2 - x1, y2 - y1);
    const rr = Math.min(r, l1 / 2, l2 / 2);
    if (rr < 0.5) {
      d += `L${x1.toFixed(1)},${y1.toFixed(1)}`;
      continue;
    }
    const ax = x1 - ((x1 - x0) / l1) * rr;
    const ay = y1 - ((y1 - y0) / l1) * rr;
    const bx = x1 + ((x2 - x1) / l2) * rr;
    const by = y1 + ((y2 - y1) / l2) * rr;
    d += `L${ax.toFixed(1)},${ay.toFixed(1)}Q${x1.toFixed(1)},${y1.toFixed(1)} ${bx.toFixed(1)},${by.toFixed(1)}`;
  }
  const last = pts[pts.length - 1];
  return `${d}L${last[0].toFixed(1)},${last[1].toFixed(1)}`;
}

// ---- overlay colours (restyle: no layout) -----------------------------------

/**
 * The overlay value of a module box: its module's, or for a folded run the mean of its
 * members' finite values; NaN when there is none.
 * @param {GraphIndex} index @param {VisNode} v @param {Record<string, number | null>} values
 *   a value per module path (`ModelGraph.overlay()`)
 */
export function boxValue(index, v, values) {
  if (v.kind !== "fold") {
    const x = values[v.node.path];
    return typeof x === "number" && Number.isFinite(x) ? x : NaN;
  }
  let sum = 0;
  let count = 0;
  for (const m of v.members || []) {
    const x = values[index.byId.get(m)?.path ?? ""];
    if (typeof x === "number" && Number.isFinite(x)) {
      sum += x;
      count++;
    }
  }
  return count ? sum / count : NaN;
}

/**
 * A box's fill for an overlay value, and whether its text must be light on it; null when
 * the box has no value (its theme colour stays).
 * @param {number} value @param {ReturnType<typeof gv.overlayScale>} scale
 * @param {ColorTable} table a colour table (colors.js)
 */
export function boxFill(value, scale, table) {
  if (!scale || !Number.isFinite(value)) return null;
  const rgb = rgbAt(table, scale.t(value));
  return { fill: css(rgb), dark: textColorOn(rgb) === "#fff" };
}

/**
 * The on-screen legend: label, colour bar, range (log or not).
 * @param {string} label @param {NonNullable<ReturnType<typeof gv.overlayScale>>} scale
 * @param {ColorTable} table
 */
export function legendContent(label, scale, table) {
  const stops = [];
  for (let i = 0; i <= 10; i++) stops.push(css(rgbAt(table, i / 10)));
  return [
    h("div", { class: "nbviz-graph__legend-label" }, label),
    h("div", {
      class: "nbviz-graph__legend-bar",
      style: `background: linear-gradient(to right, ${stops.join(", ")})`,
    }),
    h("div", { class: "nbviz-graph__legend-range" }, [
      h("span", {}, gv.formatValue(scale.min)),
      h("span", {}, scale.log ? "log scale" : ""),
      h("span", {}, gv.formatValue(scale.max)),
    ]),
  ];
}

/**
 * The legend of an exported SVG at (x, y): the <g> and its gradient (for the <defs>),
 * colours resolved (an export carries no stylesheet).
 * @param {string} label @param {NonNullable<ReturnType<typeof gv.overlayScale>>} scale
 * @param {ColorTable} table @param {{x: number, y: number, fg: string, gradId: string}} at
 */
export function legendSvg(label, scale, table, { x, y, fg, gradId }) {
  const gradient = s("linearGradient", { id: gradId });
  for (let i = 0; i <= 10; i++)
    gradient.appendChild(s("stop", { offset: `${i * 10}%`, "stop-color": css(rgbAt(table, i / 10)) }));
  const legend = s("g", { transform: `translate(${x},${y})` });
  legend.appendChild(s("text", { x: 0, y: 10, fill: fg, "font-size": 11 }, label));
  legend.appendChild(s("rect", { x: 0, y: 16, width: 180, height: 10, fill: `url(#${gradId})` }));
  legend.appendChild(s("text", { x: 0, y: 38, fill: fg, "font-size": 10 }, gv.formatValue(scale.min)));
  legend.appendChild(
    s(
      "text",
      { x: 180, y: 38, fill: fg, "font-size": 10, "text-anchor": "end" },
      gv.formatValue(scale.max) + (scale.log ? " (log)" : ""),
    ),
  );
  return { gradient, legend };
}
