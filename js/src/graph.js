// @ts-check
// Layer graph of a traced PyTorch model (nbviz.ModelGraph). Everything a
// person does here (open modules, unfold repeats, search, pan, zoom, details,
// export) works on data already in the browser, so it keeps working while the
// kernel is busy; overlay updates only restyle, they never lay out again.
import "./lib/common.css";
import "./graph.css";
import { colorTable } from "./lib/colors.js";
import { coalesce, coalesceAsync, el as h, svgEl as s, watchTheme } from "./lib/dom.js";
import { keepPicture, layoutCache, layoutVisible, nextPictures } from "./lib/graph-blocks.js";
import { viewBounds } from "./lib/graph-cull.js";
import { detailsContent } from "./lib/graph-details.js";
import { elkLayout } from "./lib/graph-elk.js";
import { keyAction } from "./lib/graph-keys.js";
import elkWorkerCode from "./lib/graph-layout-worker.js?worker";
import { boxAt, lazyScene, sketch } from "./lib/graph-lazy.js";
import {
  boxFill,
  boxValue,
  drawScene,
  FONTS,
  legendContent,
  legendSvg,
  nodeClasses,
  planScene,
} from "./lib/graph-scene.js";
import * as gv from "./lib/graph-view.js";
import { download, fileBase, inlineStyles, pngScale, rasterize } from "./lib/svg-export.js";
import { plural } from "./lib/text.js";
import { fitView, revealView, viewportHeight, wheelFactor, zoomAt } from "./lib/viewport.js";

/**
 * @typedef {import("./lib/graph-view.js").GraphData} GraphData
 * @typedef {import("./lib/graph-view.js").GraphIndex} GraphIndex
 * @typedef {import("./lib/graph-view.js").VisGraph} VisGraph
 * @typedef {import("./lib/graph-view.js").VisNode} VisNode
 * @typedef {import("./lib/graph-view.js").GNode} GNode
 * @typedef {Object} GraphState
 * @property {GraphData | null} graph  nbviz.Graph.to_dict(): GraphData in nbviz/graph/core.py
 * @property {number} depth            initial expansion depth (0: the whole model is one box)
 * @property {{label: string, values: Record<string, number | null>} | null} overlay_data
 *                                     a value per module path, colours module boxes; changes often
 * @property {string} title
 */

const SVG = "http://www.w3.org/2000/svg";
const BIG = 400; // visible boxes beyond which "laying out…" shows first, and only what is on screen is drawn
const PRELAY_MAX = 24; // block pictures laid out ahead after one layout, at most (lib/graph-blocks.js nextPictures)
const FAR = 0.4; // zoom below which a big graph is drawn as a sketch, without text (under ~4.5 px)
const viridis = colorTable();
let uid = 0;

// ELK, one per page, in a web worker: the page stays responsive while it lays out.
// JupyterLab evaluates a widget's module afresh for each view, so the worker lives on
// the page's global object (one per bundle): a second graph finds ELK started and warm.
const PAGE_KEY = Symbol.for(`nbviz.graph.elk.${elkWorkerCode.length}`);
/** @type {any} */ (globalThis)[PAGE_KEY] ??= { elk: null, transposed: null, warmRuns: 0 };
/** @type {{elk: ReturnType<typeof elkLayout> | null, transposed: Promise<boolean> | null, warmRuns: number}} */
const page = /** @type {any} */ (globalThis)[PAGE_KEY];
/** @returns {ReturnType<typeof elkLayout>} */
function elk() {
  page.elk ??= elkLayout(elkWorkerCode);
  return page.elk;
}
/** Runs f in idle time (a timer where the page has no requestIdleCallback). */
const idle =
  /** @type {any} */ (globalThis).requestIdleCallback || ((/** @type {(d?: any) => void} */ f) => setTimeout(f, 200));
/** Idle time left in a requestIdleCallback's slot (a timer's: enough). @param {any} deadline */
const idleLeft = (deadline) => (deadline?.timeRemaining ? deadline.timeRemaining() : 50);
// ELK is compiled Java: its first few layouts run cold and take 2-3x longer.
// After the first paint, a few throwaway layouts in idle time (once per page)
// make the first clicks as quick as the later ones. They are small (a user's layout
// asked for meanwhile waits for the one in the worker) and stop when one is asked for.
const WARM_RUNS = 4;
const WARM_MAX = 150; // boxes in a warm-up layout, at most
/** @param {() => any} makeGraph @param {() => boolean} stop */
function warmUp(makeGraph, stop) {
  const next = () =>
    idle(() => {
      if (page.warmRuns >= WARM_RUNS || stop()) return;
      page.warmRuns++;
      const g = makeGraph();
      if (!g) return;
      elk()
        .layout(g)
        .then(next, () => undefined);
    });
  next();
}
/** Whether this ELK reads compound minimum sizes transposed (checked once). */
function elkTransposed() {
  page.transposed ??= elk()
    .layout(gv.probeGraph())
    .then(gv.minimumIsTransposed)
    .catch(() => false);
  return /** @type {Promise<boolean>} */ (page.transposed);
}

/** @param {{ model: import("@anywidget/types").AnyModel<GraphState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const shownAt = performance.now(); // display: the view is being created
  const id = ++uid;
  const root = h("div", { class: "nbviz nbviz-graph" });
  el.appendChild(root);

  const {
    title,
    banner,
    depthSelect,
    foldBox,
    foldLabel,
    collapseBtn,
    searchBox,
    matchCount,
    fitBtn,
    svgBtn,
    pngBtn,
    stats,
    svg,
    markerId,
    defs,
    scene,
    busy,
    progress,
    legend,
    empty,
    viewport,
    details,
  } = buildChrome(root, id);

  // ---- state (view state lives here, never sent back to the kernel) -------
  /** @type {GraphIndex | null} */
  let index = null;
  /** @type {Set<string>} */
  let expanded = new Set();
  /** @type {Set<string>} */
  let folded = new Set();
  const found = { query: "", matches: new Set(), expand: new Set(), unfold: new Set() };
  /** @type {ReturnType<typeof gv.errorInfo>} */
  let failure = null;
  /** @type {VisGraph | null} */
  let vis = null;
  /** @type {ReturnType<typeof gv.readLayout> | null} */
  let laid = null;
  const view = { x: 0, y: 0, k: 1 };
  /** @type {string | null} */
  let selected = null;
  /** @type {Map<string, SVGGElement>} */
  let groups = new Map();
  /** @type {Map<string, string>} */
  let lastFill = new Map();
  let layoutSeq = 0;
  /** @type {string | null} */
  let pendingReveal = null; // after a search, bring the first match into view
  /** @type {string | null} */
  let focusedId = null; // the box the keyboard is on (the graph's one tab stop)
  let layouts = 0;
  let firstLayout = true;
  let blockCache = layoutCache(); // layouts of blocks and outer graphs, for this graph and font (lib/graph-blocks.js)
  let disposed = false;

  // ---- text measuring (canvas; cached) ------------------------------------
  const measureCtx = /** @type {CanvasRenderingContext2D} */ (document.createElement("canvas").getContext("2d"));
  /** @type {Map<string, number>} */
  const widths = new Map();
  let family = "sans-serif";
  /** @type {gv.Measure} */
  const measure = (text, font) => {
    if (!text) return 0;
    const key = `${font}\u0000${text}`;
    let w = widths.get(key);
    if (w === undefined) {
      measureCtx.font = `${FONTS[font]} ${family}`;
      w = measureCtx.measureText(text).width;
      widths.set(key, w);
    }
    return w;
  };

  let depth = 1; // the depth last asked for (trait, select, collapse all)
  function traitDepth() {
    const d = Math.floor(Number(model.get("depth") ?? 1));
    return Number.isFinite(d) ? Math.max(0, d) : 1;
  }

  // ---- the effective view -------------------------------------------------
  function effectiveExpanded() {
    const out = new Set(expanded);
    for (const x of found.expand) out.add(x);
    return out;
  }
  function effectiveFolded() {
    const out = new Set(folded);
    for (const x of found.unfold) out.delete(x);
    return out;
  }
  /** A person changed the view by hand: search expansions become theirs. */
  function materialize() {
    expanded = effectiveExpanded();
    folded = effectiveFolded();
    found.expand = new Set();
    found.unfold = new Set();
  }

  function readGraph() {
    /** @type {GraphData | null} */
    const graph = model.get("graph");
    if (!graph || !Array.isArray(graph.nodes)) {
      index = null;
      failure = null;
      return;
    }
    index = gv.indexGraph(graph);
    blockCache = layoutCache();
    failure = gv.errorInfo(index);
    depth = traitDepth();
    expanded = gv.expandedToDepth(index, depth);
    folded = gv.allRuns(index);
    if (failure) {
      for (const a of failure.expand) expanded.add(a);
      for (const r of failure.unfold) folded.delete(r);
    }
    found.expand = new Set();
    found.unfold = new Set();
    found.matches = new Set();
    if (found.query) applySearch(found.query, false);
    selected = null;
    details.hidden = true;
    firstLayout = true;
  }

  function syncChrome() {
    title.textContent = model.get("title") || "";
    title.hidden = !title.textContent;
    if (failure) {
      banner.textContent = failure.text;
      banner.hidden = false;
    } else banner.hidden = true;
    const max = index ? index.maxDepth : 0;
    if (depthSelect.options.length !== max + 1) {
      depthSelect.replaceChildren();
      for (let d = 0; d <= max; d++)
        depthSelect.appendChild(h("option", { value: String(d) }, d === max && d > 0 ? `${d} (all)` : String(d)));
    }
    depthSelect.value = String(Math.min(max, depth));
    foldLabel.hidden = !index || index.runs.size === 0;
    if (index) {
      const eff = effectiveFolded();
      foldBox.checked = eff.size > 0;
      foldBox.indeterminate = eff.size > 0 && eff.size < index.runs.size;
      const g = index.graph;
      const rootNode = g.root ? index.byId.get(g.root) : null;
      const parts = [`${index.graph.nodes.length.toLocaleString("en-US")} nodes`];
      if (rootNode) {
        parts.push(`${gv.formatCount(rootNode.params_total ?? 0)} params`);
        if (rootNode.flops != null) parts.push(gv.formatFlops(rootNode.flops));
      }
      stats.textContent = parts.join(" · ");
    } else stats.textContent = "";
    empty.textContent = index ? "" : "no graph yet";
    empty.hidden = !!index;
  }

  // ---- layout -------------------------------------------------------------
  /** @type {string[] | null} */
  let pendingAnchor = null;
  let layoutWanted = false; // a layout is asked for and has not started yet
  const scheduleLayout = coalesceAsync(async () => {
    if (disposed) return;
    try {
      await layoutOnce();
    } finally {
      busy.hidden = true;
    }
  });

  /**
   * Lays out again (coalesced; never two at once); anchors: ids whose box should stay put
   * on screen.
   * @param {string[]} [anchors]
   */
  function requestLayout(anchors) {
    if (anchors && !pendingAnchor) pendingAnchor = anchors;
    layoutWanted = true;
    scheduleLayout();
  }

  async function layoutOnce() {
    const seq = ++layoutSeq;
    layoutWanted = false;
    const anchors = pendingAnchor;
    pendingAnchor = null;
    syncChrome();
    if (!index) {
      scene.replaceChildren();
      groups = new Map();
      vis = null;
      laid = null;
      root.dataset.visible = "0";
      return;
    }
    const fam = getComputedStyle(root).fontFamily || "sans-serif";
    if (fam !== family) {
      widths.clear();
      blockCache = layoutCache();
    }
    family = fam;
    /** @type {{x: number, y: number, id: string} | null} */
    let anchorAt = null;
    if (anchors && laid) {
      for (const a of anchors) {
        const b = laid.boxes.get(a);
        if (b) {
          anchorAt = { x: view.x + view.k * b.x, y: view.y + view.k * b.y, id: a };
          break;
        }
      }
    }
    const started = performance.now();
    const shown = { expanded: effectiveExpanded(), folded: effectiveFolded() };
    const nextVis = gv.visibleGraph(index, shown.expanded, shown.folded);
    if (nextVis.nodes.length > BIG) {
      busy.hidden = false;
      // ELK in a worker leaves the page free to paint "laying out…" while it works (and
      // a layout from the cache needs none): a frame is waited for only when ELK runs here
      if (elk().where() === "page") await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    }
    /** @type {Awaited<ReturnType<typeof layoutVisible>>} */
    let result;
    const t = { elk: 0, laid: 0, painted: 0, styled: 0 };
    let transposed = false;
    try {
      transposed = await elkTransposed();
      t.elk = performance.now();
      // identical open blocks (an LLM's decoder layers) are laid out once and stamped; blocks
      // laid out before (all but the one layer where a box opened or closed) come from the cache
      result = await layoutVisible((g) => elk().layout(g), index, nextVis, { measure, transposed, cache: blockCache });
      t.laid = performance.now();
    } catch (err) {
      banner.textContent = `layout failed: ${err instanceof Error ? err.message : String(err)}`;
      banner.hidden = false;
      return;
    }
    busy.hidden = true;
    if (disposed || seq !== layoutSeq) return;
    vis = nextVis;
    laid = result;
    root.dataset.blocks = String(result.blocks); // pictures laid out once and stamped
    root.dataset.blocksReused = String(result.reused); // of which laid out by an earlier layout
    root.dataset.outer = result.outer; // the rest: "elk", "cached" or "patched" (or "": no blocks)
    root.dataset.elk = elk().where(); // "worker" or "page"
    refreshMatches();
    paint();
    t.painted = performance.now();
    restyle();
    t.styled = performance.now();
    if (firstLayout) {
      firstLayout = false;
      fit(true);
      if (page.warmRuns < WARM_RUNS) warmUp(warmGraph, () => disposed || layoutWanted);
      if (failure?.node && laid.boxes.has(failure.node)) reveal(failure.node);
    } else if (anchorAt) {
      const candidates = [anchorAt.id, ...(anchors || [])];
      for (const a of candidates) {
        const b = laid.boxes.get(a);
        if (b) {
          view.x = anchorAt.x - view.k * b.x;
          view.y = anchorAt.y - view.k * b.y;
          break;
        }
      }
      applyTransform();
    } else applyTransform();
    if (pendingReveal) {
      reveal(pendingReveal);
      pendingReveal = null;
    }
    root.dataset.visible = String(vis.nodes.length);
    requestAnimationFrame(() =>
      setTimeout(() => {
        if (seq !== layoutSeq) return;
        root.dataset.layoutMs = (performance.now() - started).toFixed(1);
        // ms spent: preparing, in ELK, building the SVG, restyling, until the frame was painted
        root.dataset.layoutParts = [
          t.elk - started,
          t.laid - t.elk,
          t.painted - t.laid,
          t.styled - t.painted,
          performance.now() - t.styled,
        ]
          .map((x) => x.toFixed(0))
          .join(",");
        root.dataset.paintedAt = performance.now().toFixed(1); // page clock: benchmarks time from a click
        root.dataset.layouts = String(++layouts);
        if (layouts === 1) root.dataset.firstPaintMs = (performance.now() - shownAt).toFixed(1);
      }, 0),
    );
    if (selected && !vis.byId.has(selected)) selected = null;
    if (result.blocks) prelay(seq, vis, shown, transposed);
  }

  /**
   * After a layout by blocks: the block pictures one click inside a block would ask for
   * (lib/graph-blocks.js nextPictures) are laid out in idle time, one at a time, and kept in
   * the view's cache, so that the first collapse of a box inside a decoder layer needs no
   * ELK. Stops when another layout is asked for or starts, or the view goes; never starts an
   * ELK run while a layout is pending (ELK is one worker: a user's layout would wait), nor
   * where ELK runs in the page (a run there would hold the page), and asks for a bounded number.
   * @param {number} seq @param {VisGraph} shownVis @param {{expanded: Set<string>, folded: Set<string>}} sets
   * @param {boolean} transposed
   */
  function prelay(seq, shownVis, sets, transposed) {
    if (!index || elk().where() !== "worker") return;
    const cache = blockCache;
    let left = PRELAY_MAX;
    const stop = () => disposed || seq !== layoutSeq || layoutWanted || cache !== blockCache;
    const pictures = nextPictures(index, shownVis, { ...sets, cache, measure, transposed });
    const next = () =>
      idle((/** @type {any} */ deadline) => {
        if (stop() || left <= 0) return;
        if (idleLeft(deadline) < 25) return next(); // a step takes ~10-30 ms: wait for a longer idle slot
        const step = pictures.next(); // one toggled view: ~10-30 ms
        if (step.done) return;
        const picture = step.value;
        if (!picture) return next(); // in the cache already
        left--;
        elk()
          .layout(picture.graph)
          .then(
            (g) => {
              if (cache === blockCache) keepPicture(cache, picture, g);
              next();
            },
            () => undefined,
          );
      });
    next();
  }

  /** The graph one level deeper than now (what a click is likely to ask for), capped in size. */
  function warmGraph() {
    if (!index) return null;
    const idx = index;
    const next = effectiveExpanded();
    for (const v of vis?.nodes || []) if (v.kind === "module" && !v.open && gv.canExpand(idx, v.id)) next.add(v.id);
    let g = gv.visibleGraph(idx, next, effectiveFolded());
    if (g.nodes.length > WARM_MAX) g = gv.visibleGraph(idx, effectiveExpanded(), effectiveFolded());
    if (g.nodes.length > WARM_MAX) return null;
    return gv.toElk(idx, g, { measure });
  }

  // ---- painting -----------------------------------------------------------
  /** @type {ReturnType<typeof lazyScene> | null} */
  let lazy = null; // big graphs: drawn by what is near the viewport (lib/graph-lazy.js)
  const sketchLayer = s("g", { class: "nbviz-graph__sketch" }); // big graphs far out: a few paths
  let sketchDirty = true;

  function paint() {
    if (!index || !vis || !laid) return;
    const errorNode = failure?.node ?? null;
    const input = { index, vis, laid, measure, markerId, errorNode };
    lastFill = new Map();
    const hadFocus = svg.contains(document.activeElement);
    if (!focusedId || !vis.byId.has(focusedId)) focusedId = vis.nodes[0]?.id ?? null;
    sketchLayer.remove();
    sketchDirty = true;
    if (vis.nodes.length > BIG) {
      // nothing drawn yet: applyTransform draws what the viewport shows
      const plan = planScene(input);
      groups = new Map();
      lazy = lazyScene(plan, (nid, g) => {
        groups.set(nid, g);
        styleBox(nid, g);
      });
      scene.replaceChildren(...plan.layers);
    } else {
      lazy = null;
      const drawn = drawScene(input);
      groups = drawn.groups;
      scene.replaceChildren(...drawn.layers);
    }
    const stop = focusedId ? (lazy ? lazy.ensure(focusedId) : groups.get(focusedId)) : undefined;
    if (stop) {
      stop.setAttribute("tabindex", "0");
      if (hadFocus) stop.focus({ preventScroll: true });
    }
    svg.setAttribute(
      "aria-label",
      `layer graph of ${index.graph.model || "the model"}, ${vis.nodes.length} boxes shown`,
    );
  }

  /** The sketch of a big graph far out (lib/graph-lazy.js), drawn again after a restyle. */
  function drawSketch() {
    if (!sketchDirty || !index || !vis || !laid) return;
    sketchDirty = false;
    const idx = index;
    const errorNode = failure?.node ?? null;
    /** @param {VisNode} v */
    const look = (v) => {
      const cls = nodeClasses(v, errorNode);
      if (found.matches.has(v.id)) cls.push("nbviz-graph__node--match");
      if (selected === v.id) cls.push("nbviz-graph__node--selected");
      const colour = boxColour(v);
      if (colour) cls.push("nbviz-graph__node--valued");
      return { cls: cls.join(" "), fill: colour ? colour.fill : "" };
    };
    const sk = sketch(vis, laid, look, (v) => idx.depth.get(v.id) ?? 0);
    /** @type {SVGElement[]} */
    const parts = [];
    for (const e of sk.edges)
      parts.push(s("path", { class: `nbviz-graph__edge${e.multi ? " nbviz-graph__edge--multi" : ""}`, d: e.d }));
    if (sk.arrows) parts.push(s("path", { class: "nbviz-graph__arrow", d: sk.arrows }));
    for (const g of sk.groups) {
      const wrap = s("g", { class: g.cls });
      if (g.open) {
        wrap.appendChild(s("path", { class: "nbviz-graph__container", d: g.d }));
        const band = s("path", { class: "nbviz-graph__header-band", d: g.band });
        if (g.fill) band.style.fill = g.fill;
        const head = s("g", { class: "nbviz-graph__header" });
        head.appendChild(band);
        wrap.appendChild(head);
      } else {
        const p = s("path", { class: "nbviz-graph__box", d: g.d });
        if (g.fill) p.style.fill = g.fill;
        wrap.appendChild(p);
      }
      parts.push(wrap);
    }
    sketchLayer.replaceChildren(...parts);
  }

  // ---- restyle: overlay, matches, selection (no layout) -------------------
  /**
   * The overlay: trait `overlay_data` (Python's `ModelGraph.overlay()` sets it).
   * @returns {{label?: string, values?: Record<string, number | null>} | null}
   */
  function readOverlay() {
    const v = model.get("overlay_data");
    return v && typeof v === "object" ? v : null;
  }

  /** @type {{values: Record<string, number | null> | null, scale: ReturnType<typeof gv.overlayScale>}} */
  let overlayNow = { values: null, scale: null };
  /** A box's overlay colour (null: none). @param {VisNode} v */
  function boxColour(v) {
    const { values, scale } = overlayNow;
    if (!index || (v.kind !== "module" && v.kind !== "fold")) return null;
    const value = scale && values ? boxValue(index, v, values) : NaN;
    const colour = boxFill(value, scale, viridis);
    return colour ? { ...colour, value } : null;
  }

  /** Matches, selection and overlay colour on one drawn box. @param {string} nid @param {SVGGElement} g */
  function styleBox(nid, g) {
    const v = vis?.byId.get(nid);
    if (!v) return;
    g.classList.toggle("nbviz-graph__node--match", found.matches.has(nid));
    g.classList.toggle("nbviz-graph__node--selected", selected === nid);
    if (v.kind !== "module" && v.kind !== "fold") return;
    const colour = boxColour(v);
    const fill = colour ? colour.fill : "";
    if (colour) g.dataset.value = String(colour.value);
    else delete g.dataset.value;
    if (lastFill.get(nid) === fill) return;
    lastFill.set(nid, fill);
    const target = /** @type {SVGElement | null} */ (
      g.querySelector(
        g.dataset.fill === "header"
          ? ":scope > .nbviz-graph__header > .nbviz-graph__header-band"
          : ":scope > .nbviz-graph__box",
      )
    );
    if (target) target.style.fill = fill;
    g.classList.toggle("nbviz-graph__node--valued", !!colour);
    g.classList.toggle("nbviz-graph__node--on-dark", !!colour?.dark);
    g.classList.toggle("nbviz-graph__node--on-light", !!colour && !colour.dark);
  }

  function restyle() {
    if (!index || !vis) return;
    const ov = readOverlay();
    const values = ov && ov.values ? ov.values : null;
    overlayNow = { values, scale: gv.overlayScale(values) };
    // a big graph: the boxes drawn so far (the others are styled when drawn)
    for (const [nid, g] of lazy || groups.size ? groups : collectGroups()) styleBox(nid, g);
    if (lazy) {
      sketchDirty = true;
      if (sketchLayer.parentNode) drawSketch();
    }
    drawLegend(ov, overlayNow.scale);
    root.dataset.matches = String(found.matches.size);
  }

  function collectGroups() {
    groups = new Map();
    for (const g of /** @type {NodeListOf<SVGGElement>} */ (scene.querySelectorAll("g.nbviz-graph__node"))) {
      if (g.dataset.id) groups.set(g.dataset.id, g);
    }
    return groups;
  }

  /** @param {any} ov @param {ReturnType<typeof gv.overlayScale>} scale */
  function drawLegend(ov, scale) {
    legend.hidden = !ov || !scale;
    if (ov && scale) legend.replaceChildren(...legendContent(String(ov.label ?? ""), scale, viridis));
  }

  // ---- pan / zoom ---------------------------------------------------------
  function applyTransform() {
    scene.setAttribute("transform", `translate(${view.x.toFixed(2)},${view.y.toFixed(2)}) scale(${view.k.toFixed(5)})`);
    root.dataset.zoom = view.k.toFixed(3);
    const far = !!lazy && view.k < FAR;
    root.classList.toggle("nbviz-graph--far", far);
    if (!lazy) return;
    // a big graph: near, the items around the viewport; far, the sketch (and the keyboard's box)
    if (far) {
      drawSketch();
      if (sketchLayer.parentNode !== scene) scene.insertBefore(sketchLayer, scene.firstChild);
      lazy.update(null, focusedId);
    } else {
      sketchLayer.remove();
      lazy.update(viewBounds(view, viewport.clientWidth || 800, viewport.clientHeight || 500), focusedId);
    }
    root.dataset.culled = String(lazy.detached);
    root.dataset.drawn = String(lazy.drawn);
  }
  /** Runs `fn` with everything drawn (export copies what shows), then draws by the view again. @template T @param {() => T} fn */
  function unculled(fn) {
    if (!lazy) return fn();
    lazy.all();
    sketchLayer.remove();
    root.classList.remove("nbviz-graph--far");
    try {
      return fn();
    } finally {
      applyTransform();
    }
  }
  const scheduleTransform = coalesce(applyTransform);

  /**
   * The "fit" button (`whole`): the whole graph in view, width and height. The first
   * paint (`sizeViewport`) sizes the viewport to the graph and fits the width, and the
   * height too when that stays readable (a tall graph then starts at its top).
   * @param {boolean} [sizeViewport] @param {boolean} [whole]
   */
  function fit(sizeViewport = false, whole = false) {
    if (!laid) return;
    const W = viewport.clientWidth || 800;
    if (sizeViewport)
      viewport.style.height = `${viewportHeight(laid.height, Math.min(1.25, W / Math.max(1, laid.width)))}px`;
    Object.assign(view, fitView(W, viewport.clientHeight || 500, laid.width, laid.height, whole));
    applyTransform();
  }

  /** Pans so that a box is in view (keeps the zoom). @param {string} nid */
  function reveal(nid) {
    const b = laid?.boxes.get(nid);
    if (!b) return;
    const next = revealView(view, b, viewport.clientWidth || 800, viewport.clientHeight || 500);
    if (next === view) return;
    Object.assign(view, next);
    applyTransform();
  }

  /** @type {{x: number, y: number, vx: number, vy: number, moved: boolean, pointer: number} | null} */
  let drag = null;
  /** @param {PointerEvent} ev */
  function onPointerDown(ev) {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false, pointer: ev.pointerId };
  }
  /** @param {PointerEvent} ev */
  function onPointerMove(ev) {
    if (!drag || ev.pointerId !== drag.pointer) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    if (!drag.moved) {
      drag.moved = true;
      try {
        svg.setPointerCapture(ev.pointerId);
      } catch {
        // the pointer may already be gone
      }
      root.classList.add("nbviz-graph--dragging");
    }
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    scheduleTransform();
  }
  /** @param {PointerEvent} ev */
  function onPointerUp(ev) {
    if (!drag || ev.pointerId !== drag.pointer) return;
    const wasDrag = drag.moved;
    drag = null;
    root.classList.remove("nbviz-graph--dragging");
    if (!wasDrag) onActivate(/** @type {Element} */ (ev.target), ev);
  }
  function onPointerCancel() {
    drag = null;
    root.classList.remove("nbviz-graph--dragging");
  }
  /** @param {WheelEvent} ev */
  function onWheel(ev) {
    // Ctrl/Cmd + wheel (and trackpad pinch, which sends ctrlKey) zooms; a plain
    // wheel keeps scrolling the notebook, as embedded maps do.
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    const px = ev.clientX - r.left;
    const py = ev.clientY - r.top;
    Object.assign(view, zoomAt(view, px, py, wheelFactor(ev.deltaY, ev.deltaMode)));
    scheduleTransform();
  }

  // ---- clicks -------------------------------------------------------------
  /** @param {Element | null} target @param {{clientX: number, clientY: number}} [at] */
  function onActivate(target, at) {
    if (!index || !target || !target.closest) return;
    const g = /** @type {SVGGElement | null} */ (target.closest("g.nbviz-graph__node"));
    let nid = g?.dataset.id;
    let action = /** @type {HTMLElement | null} */ (target.closest("[data-action]"))?.dataset.action;
    if (!nid && lazy && vis && laid && at && sketchLayer.parentNode) {
      // the sketch has no elements per box: find the box under the pointer
      const idx = index;
      const r = svg.getBoundingClientRect();
      const x = (at.clientX - r.left - view.x) / view.k;
      const y = (at.clientY - r.top - view.y) / view.k;
      const hit = boxAt(vis, laid, x, y, (v) => idx.depth.get(v.id) ?? 0);
      nid = hit?.id;
      action = hit?.header ? "collapse" : undefined;
    }
    if (!nid) return;
    const v = vis?.byId.get(nid);
    if (!v) return;
    focusedId = nid; // the keyboard goes on from the box last clicked
    if (action === "info") return showDetails(v.kind === "fold" ? v.node.id : nid);
    if (action === "unfold" && v.run) return toggleFold(v.run, false, [nid, v.run]);
    if (action === "refold" && v.run) return toggleFold(v.run, true, [gv.FOLD_PREFIX + v.run, nid]);
    if (v.open) {
      if (action === "collapse") toggleExpand(nid, false);
      return;
    }
    if (v.kind === "fold") return showDetails(v.node.id);
    if (v.kind === "module" && gv.canExpand(index, nid)) return toggleExpand(nid, true);
    showDetails(nid);
  }

  /** @param {string} nid @param {boolean} open */
  function toggleExpand(nid, open) {
    materialize();
    if (open) expanded.add(nid);
    else expanded.delete(nid);
    requestLayout([nid]);
  }

  /** @param {string} run @param {boolean} fold @param {string[]} anchors */
  function toggleFold(run, fold, anchors) {
    materialize();
    if (fold) folded.add(run);
    else folded.delete(run);
    requestLayout(anchors);
  }

  // ---- keyboard -----------------------------------------------------------
  /** Moves the keyboard (and the one tab stop) to a box, in view. @param {string} nid */
  function focusNode(nid) {
    const g = lazy ? lazy.ensure(nid) : groups.get(nid);
    if (!g) return;
    groups.get(/** @type {string} */ (focusedId))?.setAttribute("tabindex", "-1");
    focusedId = nid;
    g.setAttribute("tabindex", "0");
    reveal(nid); // first: a box culled off screen shows again, and can take the focus
    applyTransform();
    g.focus({ preventScroll: true });
  }

  /** Keys on a box (see lib/graph-keys.js); they never reach JupyterLab's shortcuts. @param {KeyboardEvent} ev */
  function onKeyDown(ev) {
    // Every key stops here, handled or not: JupyterLab runs no shortcut from inside the graph
    // (data-lm-suppress-shortcuts), yet it holds on to each keydown it sees until a shortcut
    // runs elsewhere, and with it the event's target: a box of a drawing since replaced.
    ev.stopPropagation();
    const g = /** @type {SVGGElement | null} */ (/** @type {Element} */ (ev.target).closest?.("g.nbviz-graph__node"));
    if (!g || !index || !vis || !g.dataset.id) return;
    const nid = g.dataset.id;
    const action = keyAction(index, vis, nid, ev.key);
    if (!action) return;
    ev.preventDefault();
    if ("move" in action) focusNode(action.move);
    else if ("unfold" in action) toggleFold(action.unfold, false, [nid, action.unfold]);
    else if ("expand" in action) toggleExpand(action.expand, true);
    else if ("details" in action) showDetails(action.details);
    else if ("collapse" in action) {
      focusedId = action.collapse; // the collapsed box keeps the keyboard
      toggleExpand(action.collapse, false);
    }
  }

  // ---- search -------------------------------------------------------------
  /** @param {string} query @param {boolean} relayout */
  function applySearch(query, relayout = true) {
    found.query = query;
    if (!index) return;
    const r = gv.search(index, query, expanded, folded);
    found.matches = new Set(r.matches);
    found.expand = new Set(r.expand);
    found.unfold = new Set(r.unfold);
    showMatchCount();
    if (relayout) {
      pendingReveal = r.matches[0] ?? null;
      requestLayout();
    }
  }
  /**
   * Ops inside leaf modules match only where they show: after the view changed
   * (a module opened, another depth), match again on what shows now.
   */
  function refreshMatches() {
    if (!index || !found.query.trim()) return;
    found.matches = new Set(gv.search(index, found.query, effectiveExpanded(), effectiveFolded()).matches);
    showMatchCount();
  }
  function showMatchCount() {
    const k = found.matches.size;
    matchCount.textContent = found.query.trim() ? plural(k, "match", "matches") : "";
  }
  let searchTimer = 0;
  searchBox.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => applySearch(searchBox.value), 200);
  });
  searchBox.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      clearTimeout(searchTimer);
      applySearch(searchBox.value);
    } else if (ev.key === "Escape") {
      searchBox.value = "";
      clearTimeout(searchTimer);
      applySearch("");
    }
  });

  // ---- details panel (its content: lib/graph-details.js) -----------------
  /** @param {string} nid */
  function showDetails(nid) {
    if (!index) return;
    const n = index.byId.get(nid);
    if (!n) return;
    selected = vis?.byId.has(nid) ? nid : null;
    details.replaceChildren(...detailsContent(index, n, closeDetails));
    details.hidden = false;
    details.dataset.id = nid;
    restyle();
  }

  function closeDetails() {
    selected = null;
    details.hidden = true;
    delete details.dataset.id;
    restyle();
  }

  // ---- export (the generic parts: lib/svg-export.js) ---------------------
  /** A standalone SVG of the whole graph as it is now, colours resolved. */
  /**
   * The standalone SVG of the graph (the whole of it), or with `inView` of the part the
   * viewport shows (as drawn now), with the title and the legend.
   * @param {boolean} [inView]
   */
  function exportSvgText(inView = false) {
    if (!laid || !index) return null;
    const style = getComputedStyle(root);
    const bg = style.getPropertyValue("--nbviz-bg").trim() || "#ffffff";
    const fg = style.getPropertyValue("--nbviz-fg").trim() || "#1f1f1f";
    const pad = 16;
    const titleText = model.get("title") || index.graph.model || "";
    const top = titleText ? 28 : 0;
    const legendH = legend.hidden ? 0 : 44;
    // the part of the graph shown, in its own units: all of it, or the viewport's window on it
    let win = { x: 0, y: 0, width: laid.width, height: laid.height };
    if (inView) {
      const b = viewBounds(view, viewport.clientWidth || 800, viewport.clientHeight || 500, 0);
      const x0 = Math.max(0, b.x0);
      const y0 = Math.max(0, b.y0);
      win = { x: x0, y: y0, width: Math.min(laid.width, b.x1) - x0, height: Math.min(laid.height, b.y1) - y0 };
    }
    const W = Math.ceil(win.width + 2 * pad);
    const H = Math.ceil(win.height + 2 * pad + top + legendH);
    const out = /** @type {SVGSVGElement} */ (
      s("svg", {
        xmlns: SVG,
        width: W,
        height: H,
        viewBox: `0 0 ${W} ${H}`,
        "font-family": style.fontFamily || "sans-serif",
      })
    );
    out.appendChild(s("rect", { width: W, height: H, fill: bg }));
    const d = /** @type {SVGElement} */ (defs.cloneNode(true));
    inlineStyles(defs, d);
    out.appendChild(d);
    if (titleText)
      out.appendChild(s("text", { x: pad, y: pad + 10, fill: fg, "font-size": 14, "font-weight": 600 }, titleText));
    /** @returns {SVGGElement} */
    const copy = () => {
      const c = /** @type {SVGGElement} */ (scene.cloneNode(true));
      inlineStyles(scene, c);
      return c;
    };
    const clone = inView ? copy() : unculled(copy); // the view: what is drawn now covers it
    for (const t of clone.querySelectorAll("title")) t.remove();
    if (inView) {
      // a window onto the graph: a nested svg clips what lies outside it
      clone.removeAttribute("transform");
      const frame = s("svg", {
        x: pad,
        y: pad + top,
        width: win.width,
        height: win.height,
        viewBox: `${win.x} ${win.y} ${win.width} ${win.height}`,
      });
      frame.appendChild(clone);
      out.appendChild(frame);
    } else {
      clone.setAttribute("transform", `translate(${pad},${pad + top})`);
      out.appendChild(clone);
    }
    if (legendH) {
      const ov = readOverlay();
      const scale = gv.overlayScale(ov?.values);
      if (scale) {
        const y = pad + top + win.height + 8;
        const gradId = `nbviz-graph-legend-${id}`;
        const lg = legendSvg(String(ov?.label ?? ""), scale, viridis, { x: pad, y, fg, gradId });
        d.appendChild(lg.gradient);
        out.appendChild(lg.legend);
      }
    }
    return { text: new XMLSerializer().serializeToString(out), width: W, height: H };
  }

  const fileName = () => fileBase(model.get("title") || index?.graph.model || "graph");
  let exporting = false;
  /**
   * The export buttons: a big graph's boxes not drawn yet are drawn first, a few hundred
   * a frame, with "exporting… n %" showing and the page responsive; then the file.
   * @param {(out: {text: string, width: number, height: number}) => void} save
   */
  async function exportFile(save) {
    if (exporting) return;
    exporting = true;
    try {
      const start = lazy;
      const total = start ? start.prepare(0) : 0;
      if (start && total > 0) {
        progress.hidden = false;
        for (let left = total; left > 0 && lazy === start; left = start.prepare(300)) {
          progress.textContent = `exporting… ${Math.floor((100 * (total - left)) / total)} %`;
          await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        }
        progress.textContent = "exporting… 100 %";
        await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      }
      const out = exportSvgText();
      if (out) save(out);
    } finally {
      progress.hidden = true;
      exporting = false;
    }
  }
  svgBtn.addEventListener("click", () =>
    exportFile((out) => download(new Blob([out.text], { type: "image/svg+xml" }), `${fileName()}.svg`, root)),
  );
  // A PNG is one bitmap of at most ~10^8 pixels: a graph too big to be legible in one (its
  // 11 px text drawn under 5.5 px) is saved as the part in view, and the line says so.
  const PNG_LEGIBLE = 0.5;
  let noteTimer = 0;
  pngBtn.addEventListener("click", async () => {
    if (!laid || exporting) return;
    const whole = pngScale(laid.width, laid.height) >= PNG_LEGIBLE;
    root.dataset.pngExtent = whole ? "graph" : "view";
    const save = (/** @type {{text: string, width: number, height: number}} */ out) =>
      rasterize(out.text, out.width, out.height, (blob) => download(blob, `${fileName()}.png`, root));
    if (whole) return exportFile(save);
    const out = exportSvgText(true);
    if (!out) return;
    save(out);
    progress.textContent =
      `PNG of the part in view: the whole graph (${Math.round(laid.width).toLocaleString("en-US")} × ` +
      `${Math.round(laid.height).toLocaleString("en-US")} px) would not be legible as one image; export SVG for all of it`;
    progress.hidden = false;
    clearTimeout(noteTimer);
    noteTimer = window.setTimeout(() => {
      if (!exporting) progress.hidden = true;
    }, 8000);
  });
  // For scripted checks: the standalone SVG text that "export SVG" downloads.
  /** @type {any} */ (root).nbvizExportSvg = () => exportSvgText()?.text ?? null;

  // ---- toolbar ------------------------------------------------------------
  depthSelect.addEventListener("change", () => {
    if (!index) return;
    depth = Number(depthSelect.value);
    expanded = gv.expandedToDepth(index, depth);
    if (failure) for (const a of failure.expand) expanded.add(a);
    found.expand = new Set();
    found.unfold = new Set();
    firstLayout = true;
    requestLayout();
  });
  collapseBtn.addEventListener("click", () => {
    if (!index) return;
    depth = 1;
    expanded = gv.expandedToDepth(index, 1);
    folded = gv.allRuns(index);
    found.expand = new Set();
    found.unfold = new Set();
    firstLayout = true;
    requestLayout();
  });
  fitBtn.addEventListener("click", () => fit(false, true));
  foldBox.addEventListener("change", () => {
    if (!index) return;
    materialize();
    folded = foldBox.checked ? gv.allRuns(index) : new Set();
    if (!foldBox.checked) found.unfold = new Set();
    requestLayout();
  });

  // ---- wiring -------------------------------------------------------------
  svg.addEventListener("pointerdown", onPointerDown);
  svg.addEventListener("pointermove", onPointerMove);
  svg.addEventListener("pointerup", onPointerUp);
  svg.addEventListener("pointercancel", onPointerCancel);
  svg.addEventListener("wheel", onWheel, { passive: false });
  svg.addEventListener("keydown", onKeyDown);
  svg.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: keys here are the graph's

  const onGraph = () => {
    readGraph();
    requestLayout();
  };
  const onDepth = () => {
    depth = traitDepth();
    if (!index) return;
    expanded = gv.expandedToDepth(index, depth);
    if (failure) for (const a of failure.expand) expanded.add(a);
    firstLayout = true;
    requestLayout();
  };
  const onOverlay = coalesce(restyle);
  const onTitle = () => syncChrome();
  model.on("change:graph", onGraph);
  model.on("change:depth", onDepth);
  model.on("change:overlay_data", onOverlay);
  model.on("change:title", onTitle);
  /**
   * The edge colour made opaque over the background. JupyterLab's text colours are
   * translucent, and edges that share a stretch (ELK merges the edges of one output: an
   * LLM's rotary embedding feeding all 32 layers) would darken it once per edge.
   */
  function opaqueEdges() {
    root.style.removeProperty("--nbviz-graph-edge-opaque");
    const style = getComputedStyle(root);
    const c = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    if (!c) return;
    c.fillStyle = style.getPropertyValue("--nbviz-bg").trim() || "#ffffff";
    c.fillRect(0, 0, 1, 1);
    c.fillStyle = style.getPropertyValue("--nbviz-graph-edge").trim() || "#777777";
    c.globalAlpha = 0.85; // as light as a lone edge was drawn before
    c.fillRect(0, 0, 1, 1);
    const [r, g, b] = c.getImageData(0, 0, 1, 1).data;
    root.style.setProperty("--nbviz-graph-edge-opaque", `rgb(${r}, ${g}, ${b})`);
  }
  opaqueEdges();
  const unwatch = watchTheme(() => {
    lastFill = new Map(); // re-derive text colours on fills
    opaqueEdges();
    onOverlay();
  });

  // Keep the picture centred when the viewport changes width (details panel, cell resize).
  let lastWidth = 0;
  const resize = new ResizeObserver(() => {
    const w = viewport.clientWidth;
    if (lastWidth && w && w !== lastWidth && laid) {
      view.x += (w - lastWidth) / 2;
      scheduleTransform();
    }
    lastWidth = w;
  });
  resize.observe(viewport);

  void elkTransposed(); // starts ELK (its first run is the slow one) while the first frame is pending
  readGraph();
  requestLayout();

  return () => {
    resize.disconnect();
    disposed = true;
    model.off("change:graph", onGraph);
    model.off("change:depth", onDepth);
    model.off("change:overlay_data", onOverlay);
    model.off("change:title", onTitle);
    unwatch();
    clearTimeout(searchTimer);
    root.remove();
  };
}

/**
 * The widget's elements, built once, under `root`: title, error banner, toolbar, and the
 * viewport (the SVG scene, legend, "laying out…", "no graph yet") beside the details panel.
 * @param {HTMLElement} root @param {number} id this view's number (ids stay unique on a page)
 */
function buildChrome(root, id) {
  const title = h("div", { class: "nbviz-title nbviz-graph__title" });
  const banner = h("div", { class: "nbviz-graph__banner", role: "alert" });
  banner.hidden = true;
  const depthSelect = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-graph__depth", "aria-label": "expand to depth" })
  );
  const foldBox = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "nbviz-graph__fold-all" }));
  foldBox.checked = true;
  const foldLabel = h(
    "label",
    { class: "nbviz-graph__fold-label", title: "show each run of identical blocks as one ×N box" },
    [foldBox, "fold repeats"],
  );
  const collapseBtn = h(
    "button",
    {
      class: "nbviz-control nbviz-graph__button",
      type: "button",
      title: "collapse every module and fold every repeat",
    },
    "collapse all",
  );
  const searchBox = /** @type {HTMLInputElement} */ (
    h("input", {
      class: "nbviz-control nbviz-graph__search",
      type: "search",
      placeholder: "search modules and ops",
      "aria-label": "search modules by path, name or type, and ops such as relu by name",
    })
  );
  const matchCount = h("span", { class: "nbviz-graph__matches", role: "status" });
  const fitBtn = h(
    "button",
    { class: "nbviz-control nbviz-graph__button", type: "button", title: "fit the whole graph in view" },
    "fit",
  );
  const svgBtn = h("button", { class: "nbviz-control nbviz-graph__button", type: "button" }, "export SVG");
  const pngBtn = h("button", { class: "nbviz-control nbviz-graph__button", type: "button" }, "export PNG");
  const stats = h("span", { class: "nbviz-graph__stats" });
  const toolbar = h("div", { class: "nbviz-graph__toolbar" }, [
    h("label", {}, ["expand to depth ", depthSelect]),
    foldLabel,
    collapseBtn,
    h("span", { class: "nbviz-graph__search-wrap" }, [searchBox, matchCount]),
    fitBtn,
    svgBtn,
    pngBtn,
    stats,
  ]);
  const svg = /** @type {SVGSVGElement} */ (s("svg", { class: "nbviz-graph__svg", role: "img" }));
  const markerId = `nbviz-graph-arrow-${id}-${Math.random().toString(36).slice(2, 8)}`;
  const defs = s("defs");
  const marker = s("marker", {
    id: markerId,
    viewBox: "0 0 10 10",
    refX: "9",
    refY: "5",
    markerWidth: "7",
    markerHeight: "7",
    orient: "auto-start-reverse",
    markerUnits: "userSpaceOnUse",
  });
  marker.appendChild(s("path", { d: "M0,1 L10,5 L0,9 z", class: "nbviz-graph__arrow" }));
  defs.appendChild(marker);
  const scene = s("g", { class: "nbviz-graph__scene" });
  svg.append(defs, scene);
  const busy = h("div", { class: "nbviz-graph__busy" }, "laying out…");
  busy.hidden = true;
  const progress = h("div", { class: "nbviz-graph__busy nbviz-graph__progress", role: "status" });
  progress.hidden = true;
  const legend = h("div", { class: "nbviz-graph__legend" });
  legend.hidden = true;
  const empty = h("div", { class: "nbviz-graph__empty" });
  const viewport = h("div", { class: "nbviz-graph__viewport" }, [svg, legend, busy, progress, empty]);
  const details = h("aside", { class: "nbviz-graph__details", "aria-label": "details" });
  details.hidden = true;
  const body = h("div", { class: "nbviz-graph__body" }, [viewport, details]);
  root.append(title, banner, toolbar, body);
  return {
    title,
    banner,
    depthSelect,
    foldBox,
    foldLabel,
    collapseBtn,
    searchBox,
    matchCount,
    fitBtn,
    svgBtn,
    pngBtn,
    stats,
    svg,
    markerId,
    defs,
    scene,
    busy,
    progress,
    legend,
    empty,
    viewport,
    details,
  };
}

export default { render };
