// @ts-check
// Live confusion matrix (nbviz/confusion/widget.py). Everything a person does
// here (normalize, hover, scrub epochs, open a cell's examples, see where the model
// looked in one) uses data already in the browser, so it works while the kernel is
// busy training. Only an example whose maps have not come yet asks the kernel.
import "./lib/common.css";
import "./confusion.css";
import { interpolateInferno } from "d3-scale-chromatic";
import { decodeArray } from "./lib/arrays.js";
import { colorTable, css, rgbAt, textColorOn } from "./lib/colors.js";
import { denseFromSparse, formatValue, maxOf, normalize, summary } from "./lib/confusion-math.js";
import { el as h, themeColors, watchTheme } from "./lib/dom.js";
import { joinLink } from "./lib/link.js";
import { imageRGBA, overlayFrame } from "./lib/overlay.js";
import { plural, shortLabels } from "./lib/text.js";

/**
 * @typedef {import("./lib/arrays.js").WireArray} WireArray
 * @typedef {"none" | "true" | "pred"} Mode
 * @typedef {Object} ConfusionState
 * @property {string[]} classes       class names, index = class
 * @property {string} title
 * @property {Mode} normalize         initial colouring chosen in Python
 * @property {WireArray} counts_index flat cells (true * K + pred) of the live epoch
 * @property {WireArray} counts_value their counts
 * @property {number} epoch           1-based number of the live epoch
 * @property {boolean} epoch_open     live counts belong to an unfinished epoch
 * @property {WireArray | null} history_index   closed epochs, concatenated sparse
 * @property {WireArray | null} history_value
 * @property {WireArray | null} history_offsets epoch e owns [offsets[e], offsets[e+1])
 * @property {WireArray | null} examples_cells  flat cell of each thumbnail
 * @property {WireArray | null} examples_images (M, h, w, 3) uint8 thumbnails
 * @property {WireArray | null} examples_ids    id of each thumbnail's example
 * @property {"" | "end of cell" | "on click" | "no inputs" | "error"} cam_status  where maps come from
 * @property {string} cam_error    why maps stopped (status "error")
 * @property {string} cam_method
 * @property {WireArray | null} cam_ids     (E,) examples with maps
 * @property {WireArray | null} cam_maps    flat uint8: per layer (E, 2, h, w) from its offset
 * @property {{layer: string, h: number, w: number, offset: number}[]} cam_index
 * @property {WireArray | null} cam_probs   (E, 2) probabilities of the true, predicted class
 * @property {WireArray | null} cam_images  (E, H, W, 3) uint8 display images
 * @property {WireArray | null} cam_masks   (E, H, W) uint8 human masks, or null
 * @property {string} link_channel  shared with linked projectors (lib/link.js), "" when none
 */

const MODES = /** @type {const} */ ([
  ["none", "counts"],
  ["true", "% of true class (recall)"],
  ["pred", "% of predicted class (precision)"],
]);
const MAX_CELL = 56; // px: small matrices stay compact
const LABELS_MAX_K = 60; // beyond this, names live in the tooltip only
const TABLE_MAX_K = 40; // accessible table twin of the canvas
const BAR = 56; // px: recall bars (right) and precision bars (below)
const GAP = 8;
const LEGEND = 52;
const viridis = colorTable();
const inferno = colorTable(interpolateInferno).lut;
const WHY_SIZE = 192; // px: each map over its example
const WHY_OPACITY = 0.6;
const METHOD_NAMES = { gradcam: "Grad-CAM", "gradcam++": "Grad-CAM++", layercam: "Layer-CAM" };
const WAITING = {
  "end of cell": "its maps are computed when the running cell ends (or call cm.explain() now)",
  "on click": "computing where the model looked…",
  "no inputs":
    "this run recorded no inputs for its examples: ConfusionMatrix(..., keep_inputs=True) in the script records them when an epoch ends",
};

/** @param {{ model: import("@anywidget/types").AnyModel<ConfusionState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "nbviz nbviz-confusion" });
  el.appendChild(root);

  const title = h("div", { class: "nbviz-title nbviz-confusion__title" });
  const stats = h("div", { class: "nbviz-status nbviz-confusion__stats", role: "status" });
  // Where a linked projector's selected points sit (their cells are outlined, dashed).
  const linked = h("div", { class: "nbviz-status nbviz-confusion__linked", role: "status", hidden: "" });
  const modeSelect = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-confusion__mode", "aria-label": "colour cells by" })
  );
  for (const [value, label] of MODES) modeSelect.appendChild(h("option", { value }, label));
  const slider = /** @type {HTMLInputElement} */ (
    h("input", { class: "nbviz-confusion__epoch", type: "range", min: "1", max: "1", step: "1", "aria-label": "epoch" })
  );
  const epochLabel = h("span", { class: "nbviz-confusion__epoch-label" });
  const controls = h("div", { class: "nbviz-controls nbviz-confusion__controls" }, [
    h("label", {}, ["colour ", modeSelect]),
    h("label", {}, ["epoch ", slider]),
    epochLabel,
  ]);
  const base = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-confusion__matrix", role: "img" }));
  const overlay = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-confusion__overlay" }));
  // Class names: text elements over the canvas, each with its full name as a tooltip
  // (the accessible table below carries them for screen readers).
  const labels = h("div", { class: "nbviz-confusion__labels", "aria-hidden": "true" });
  const stage = h("div", { class: "nbviz-confusion__stage" }, [base, overlay, labels]);
  const tooltip = h("div", { class: "nbviz-confusion__tooltip", role: "tooltip" });
  // The gallery's head and close button are made once and never leave the page: a push
  // re-renders only the label and the body. (Detaching the button, even to put it straight
  // back, makes Chromium drop a click pressed on it before the push: the gallery stayed.)
  const galleryBody = h("div", {});
  const galleryLabel = h("span", {});
  const closeGallery = h(
    "button",
    { class: "nbviz-close nbviz-confusion__close", type: "button", "aria-label": "close examples" },
    "×",
  );
  closeGallery.addEventListener("click", () => {
    view.selected = null;
    drawOverlay();
    showGallery();
    link.send({ kind: "cell", cell: null });
  });
  const galleryHead = h("div", { class: "nbviz-confusion__gallery-head" }, [galleryLabel, closeGallery]);
  const gallery = h("div", { class: "nbviz-confusion__gallery" }, [galleryHead, galleryBody]);
  gallery.hidden = true; // until a cell is chosen

  // Where the model looked in the chosen example: made once, filled in place, so a push
  // never replaces the layer slider under a dragging hand.
  const whyLabel = h("div", { class: "nbviz-confusion__why-label" });
  const whyPanels = [0, 1].map(() => {
    const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-confusion__why-map" }));
    canvas.width = canvas.height = WHY_SIZE;
    const caption = h("div", { class: "nbviz-confusion__why-caption" });
    return { canvas, caption, box: h("figure", { class: "nbviz-confusion__why-panel" }, [canvas, caption]) };
  });
  const layerSlider = /** @type {HTMLInputElement} */ (
    h("input", {
      class: "nbviz-confusion__why-layer",
      type: "range",
      min: "0",
      max: "0",
      step: "1",
      "aria-label": "layer",
    })
  );
  const layerName = h("span", { class: "nbviz-confusion__why-layer-name" });
  const maskToggle = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", checked: "" }));
  const maskLabel = h("label", {}, [maskToggle, "outline the human mask"]);
  const whyControls = h("div", { class: "nbviz-controls nbviz-confusion__why-controls" }, [
    h("label", {}, ["layer ", layerSlider]),
    layerName,
    maskLabel,
  ]);
  const whyNote = h("div", { class: "nbviz-confusion__why-note", role: "status" });
  const why = h("div", { class: "nbviz-confusion__why" }, [
    whyLabel,
    h(
      "div",
      { class: "nbviz-confusion__why-maps" },
      whyPanels.map((p) => p.box),
    ),
    whyControls,
    whyNote,
  ]);

  const table = /** @type {HTMLTableElement} */ (h("table", { class: "nbviz-sr-only nbviz-confusion__table" }));
  root.append(title, stats, linked, controls, stage, tooltip, gallery, table);

  /** View state: lives here, never sent back to the kernel. */
  const view = {
    mode: /** @type {Mode} */ (model.get("normalize") || "none"),
    followLatest: true,
    position: 0, // index into epochs()
    hover: /** @type {null | {r: number, c: number} | {bar: "recall" | "precision", k: number}} */ (null),
    selected: /** @type {null | {r: number, c: number}} */ (null),
    example: /** @type {number | null} */ (null), // id of the example explained below
    layer: -1, // index into cam_index; -1: the deepest
    outline: true,
    /** @type {[number, number, number][] | null} a linked projector's selection: [true, predicted, count] */
    linked: null,
  };
  modeSelect.value = view.mode;

  /** @type {{K: number, closed: Float64Array[], live: Float64Array | null, examples: Map<number, number[]>, images: any, ids: any, cam: ReturnType<typeof readMaps>}} */
  let data = { K: 0, closed: [], live: null, examples: new Map(), images: null, ids: null, cam: readMaps() };
  /** @type {Map<number, Uint8ClampedArray>} */
  let whyImages = new Map(); // example id -> its image at WHY_SIZE (RGBA)
  const asked = new Set(); // cells whose maps were asked of the kernel (until maps come)
  let geom = /** @type {ReturnType<typeof layout> | null} */ (null);

  function readData() {
    const classes = model.get("classes") || [];
    const K = classes.length;
    const idx = decodeArray(model.get("counts_index"));
    const val = decodeArray(model.get("counts_value"));
    const hi = decodeArray(model.get("history_index"));
    const hv = decodeArray(model.get("history_value"));
    const ho = decodeArray(model.get("history_offsets"));
    const closed = [];
    if (hi && hv && ho) {
      for (let e = 0; e + 1 < ho.data.length; e++) {
        closed.push(denseFromSparse(K, hi.data, hv.data, ho.data[e], ho.data[e + 1]));
      }
    }
    const live = model.get("epoch_open") && idx && val ? denseFromSparse(K, idx.data, val.data) : null;
    const cells = decodeArray(model.get("examples_cells"));
    const images = decodeArray(model.get("examples_images"));
    /** @type {Map<number, number[]>} */
    const examples = new Map();
    if (cells) {
      for (let i = 0; i < cells.data.length; i++) {
        const c = cells.data[i];
        if (!examples.has(c)) examples.set(c, []);
        examples.get(c)?.push(i);
      }
    }
    const cam = readMaps();
    if (cam.E !== data.cam.E || cam.maps !== data.cam.maps) asked.clear();
    data = { K, closed, live, examples, images, ids: decodeArray(model.get("examples_ids")), cam };
    whyImages = new Map();
  }

  /** The examples' maps, by id: row in the (E, ...) arrays. */
  function readMaps() {
    const ids = decodeArray(model.get("cam_ids"));
    /** @type {Map<number, number>} */
    const row = new Map();
    if (ids) for (let e = 0; e < ids.data.length; e++) row.set(Number(ids.data[e]), e);
    return {
      row,
      E: row.size,
      maps: decodeArray(model.get("cam_maps")),
      index: model.get("cam_index") || [],
      probs: decodeArray(model.get("cam_probs")),
      images: decodeArray(model.get("cam_images")),
      masks: decodeArray(model.get("cam_masks")),
    };
  }

  /** Positions on the epoch slider: closed epochs, then the live one. */
  function epochs() {
    const list = data.closed.map((m, i) => ({ matrix: m, label: `epoch ${i + 1}`, live: false }));
    if (data.live) list.push({ matrix: data.live, label: `epoch ${model.get("epoch")} (in progress)`, live: true });
    return list;
  }

  function current() {
    const list = epochs();
    if (!list.length) return { matrix: new Float64Array(data.K * data.K), label: "no data yet", live: true, n: 0 };
    if (view.followLatest || view.position >= list.length) view.position = list.length - 1;
    return { ...list[view.position], n: list.length };
  }

  function syncControls() {
    const list = epochs();
    slider.max = String(Math.max(1, list.length));
    slider.value = String(view.position + 1);
    slider.disabled = list.length < 2;
  }

  /** Geometry in CSS pixels for the current width and K. */
  function layout(ctx, K, classes, showLabels) {
    const width = Math.max(320, Math.floor(root.clientWidth || 640));
    ctx.font = `12px ${themeColors(root).font}`;
    let labelW = 0;
    if (showLabels) for (const c of classes) labelW = Math.max(labelW, ctx.measureText(c).width);
    labelW = Math.min(130, Math.ceil(labelW));
    const axis = 18;
    const rowLabelW = showLabels ? labelW + 6 : 0;
    const colLabelH = showLabels ? Math.ceil(labelW * 0.71) + 10 : 0;
    const x0 = GAP + axis + rowLabelW;
    const y0 = GAP + axis + colLabelH;
    const room = width - x0 - GAP - BAR - GAP - LEGEND - GAP;
    const side = Math.max(120, Math.min(room, 640, K * MAX_CELL));
    const cell = side / K;
    const height = y0 + side + GAP + BAR + 20;
    return { width, height, x0, y0, side, cell, axis, rowLabelW, colLabelH, labelW };
  }

  function draw() {
    const classes = model.get("classes") || [];
    const K = data.K;
    const cur = current();
    syncControls();
    const theme = themeColors(root);
    const values = normalize(cur.matrix, K, view.mode);
    const s = summary(cur.matrix, K);
    const vmax = view.mode === "none" ? maxOf(values) : 1;
    const showLabels = K <= LABELS_MAX_K;

    title.textContent = model.get("title") || "";
    title.hidden = !title.textContent;
    const acc = Number.isNaN(s.accuracy) ? "–" : `${(100 * s.accuracy).toFixed(1)} %`;
    stats.textContent = `accuracy ${acc} · ${plural(s.total, "sample")} · ${cur.label}`;
    epochLabel.textContent = `${cur.n ? view.position + 1 : 0} / ${cur.n}`;
    root.dataset.total = String(s.total);
    root.dataset.epoch = cur.label;
    root.dataset.mode = view.mode;
    const started = performance.now();

    const ctx = /** @type {CanvasRenderingContext2D} */ (base.getContext("2d"));
    geom = layout(ctx, K, classes, showLabels);
    const g = geom;
    const dpr = window.devicePixelRatio || 1;
    for (const c of [base, overlay]) {
      c.width = Math.round(g.width * dpr);
      c.height = Math.round(g.height * dpr);
      c.style.width = `${g.width}px`;
      c.style.height = `${g.height}px`;
    }
    stage.style.height = `${g.height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);

    // Cells: one pixel per cell, scaled up without smoothing (fast at K = 1,000).
    const img = new ImageData(K, K);
    for (let i = 0; i < K * K; i++) {
      const [r, gg, b] = rgbAt(viridis, values[i] / vmax);
      img.data[4 * i] = r;
      img.data[4 * i + 1] = gg;
      img.data[4 * i + 2] = b;
      img.data[4 * i + 3] = 255;
    }
    const small = document.createElement("canvas");
    small.width = K;
    small.height = K;
    /** @type {CanvasRenderingContext2D} */ (small.getContext("2d")).putImageData(img, 0, 0);
    // Crisp cells when enlarged; averaged when K exceeds the pixels available.
    ctx.imageSmoothingEnabled = g.cell < 1;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(small, g.x0, g.y0, g.side, g.side);

    if (g.cell >= 12) {
      ctx.strokeStyle = theme.background;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let k = 1; k < K; k++) {
        const p = Math.round(g.x0 + k * g.cell) + 0.5;
        ctx.moveTo(p, g.y0);
        ctx.lineTo(p, g.y0 + g.side);
        const q = Math.round(g.y0 + k * g.cell) + 0.5;
        ctx.moveTo(g.x0, q);
        ctx.lineTo(g.x0 + g.side, q);
      }
      ctx.stroke();
    }
    if (g.cell >= 22) {
      const size = Math.min(13, Math.floor(g.cell * 0.34));
      ctx.font = `${size}px ${theme.font}`;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (let r = 0; r < K; r++) {
        for (let c = 0; c < K; c++) {
          const v = values[r * K + c];
          const text = formatValue(v, view.mode);
          if (ctx.measureText(text).width > g.cell - 4) continue;
          ctx.fillStyle = textColorOn(rgbAt(viridis, v / vmax));
          ctx.fillText(text, g.x0 + (c + 0.5) * g.cell, g.y0 + (r + 0.5) * g.cell);
        }
      }
    }

    // Class names, shortened so that names sharing a long start stay apart
    // ("handwrit…three", "handwrit…seven"); the full name on hover.
    labels.replaceChildren();
    labels.style.width = `${g.width}px`;
    labels.style.height = `${g.height}px`;
    if (showLabels) {
      ctx.font = `12px ${theme.font}`; // the labels' font, to measure them
      const short = shortLabels(classes.map(String), g.labelW, (t) => ctx.measureText(t).width);
      const step = Math.max(1, Math.ceil(14 / g.cell));
      for (let k = 0; k < K; k += step) {
        const mid = (k + 0.5) * g.cell;
        const row = h(
          "span",
          { class: "nbviz-confusion__label nbviz-confusion__label--row", title: String(classes[k]) },
          short[k],
        );
        row.style.right = `${g.width - g.x0 + 6}px`;
        row.style.top = `${g.y0 + mid}px`;
        const col = h(
          "span",
          { class: "nbviz-confusion__label nbviz-confusion__label--col", title: String(classes[k]) },
          short[k],
        );
        col.style.left = `${g.x0 + mid}px`;
        col.style.top = `${g.y0 - 6}px`;
        labels.append(row, col);
      }
    }
    ctx.fillStyle = theme.muted;
    ctx.font = `11px ${theme.font}`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillText("predicted class", g.x0 + g.side / 2, GAP);
    ctx.save();
    ctx.translate(GAP, g.y0 + g.side / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("true class", 0, 0);
    ctx.restore();

    // Per-class recall (right of each row) and precision (below each column).
    const bx = g.x0 + g.side + GAP;
    const by = g.y0 + g.side + GAP;
    ctx.fillStyle = theme.track;
    ctx.fillRect(bx, g.y0, BAR, g.side);
    ctx.fillRect(g.x0, by, g.side, BAR);
    ctx.fillStyle = theme.accent;
    // Slim bars read as a chart; below ~3 px per class they fill their row.
    const thick = g.cell >= 3 ? Math.min(12, Math.max(2, g.cell * 0.5)) : Math.max(1, g.cell);
    const inset = (g.cell - thick) / 2;
    for (let k = 0; k < K; k++) {
      ctx.fillRect(bx, g.y0 + k * g.cell + inset, s.recall[k] * BAR, thick);
      ctx.fillRect(g.x0 + k * g.cell + inset, by, thick, s.precision[k] * BAR);
    }
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText("recall", bx + BAR / 2, g.y0 - 2);
    ctx.textBaseline = "top";
    ctx.fillText("precision", g.x0 + g.side / 2, by + BAR + 3);

    // Colour legend.
    const lx = bx + BAR + GAP + 6;
    const grad = ctx.createLinearGradient(0, g.y0 + g.side, 0, g.y0);
    for (let i = 0; i <= 10; i++) grad.addColorStop(i / 10, css(rgbAt(viridis, i / 10)));
    ctx.fillStyle = grad;
    ctx.fillRect(lx, g.y0, 12, g.side);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    const top = view.mode === "none" ? String(Math.round(vmax)) : "100%";
    ctx.fillText(top, lx + 16, g.y0 + 6);
    ctx.fillText(view.mode === "none" ? "0" : "0%", lx + 16, g.y0 + g.side - 6);

    base.setAttribute("aria-label", `confusion matrix of ${plural(K, "class", "classes")}, ${stats.textContent}`);
    // Where the cells are, for scripted interaction (tests, automation).
    overlay.dataset.geometry = JSON.stringify({ x0: g.x0, y0: g.y0, cell: g.cell, k: K });
    root.dataset.drawMs = (performance.now() - started).toFixed(1);
    fillTable(cur.matrix, classes, K);
    drawOverlay();
    showGallery();
  }

  function drawOverlay() {
    if (!geom) return;
    const g = geom;
    const ctx = /** @type {CanvasRenderingContext2D} */ (overlay.getContext("2d"));
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    const theme = themeColors(root);
    /** @param {number} r @param {number} c @param {string} color */
    const outline = (r, c, color) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      const w = Math.max(g.cell, 3);
      ctx.strokeRect(g.x0 + c * g.cell - 1, g.y0 + r * g.cell - 1, w + 2, w + 2);
    };
    if (view.linked) {
      ctx.setLineDash([4, 3]);
      for (const [r, c] of view.linked) if (r < data.K && c < data.K) outline(r, c, theme.foreground);
      ctx.setLineDash([]);
    }
    if (view.selected) outline(view.selected.r, view.selected.c, theme.accent);
    if (view.hover && "r" in view.hover) outline(view.hover.r, view.hover.c, theme.foreground);
  }

  /** @param {MouseEvent} ev */
  function hitTest(ev) {
    if (!geom) return null;
    const g = geom;
    const rect = overlay.getBoundingClientRect();
    const x = ev.clientX - rect.left;
    const y = ev.clientY - rect.top;
    const c = Math.floor((x - g.x0) / g.cell);
    const r = Math.floor((y - g.y0) / g.cell);
    const inCols = c >= 0 && c < data.K;
    const inRows = r >= 0 && r < data.K;
    if (inRows && inCols) return { r, c, x, y };
    const bx = g.x0 + g.side + GAP;
    if (inRows && x >= bx && x < bx + BAR) return { bar: /** @type {const} */ ("recall"), k: r, x, y };
    const by = g.y0 + g.side + GAP;
    if (inCols && y >= by && y < by + BAR) return { bar: /** @type {const} */ ("precision"), k: c, x, y };
    return null;
  }

  /** @param {MouseEvent} ev */
  function onMove(ev) {
    const hit = hitTest(ev);
    view.hover = hit;
    if (!hit) {
      tooltip.style.display = "none";
      drawOverlay();
      return;
    }
    const classes = model.get("classes") || [];
    const cur = current();
    const K = data.K;
    const s = summary(cur.matrix, K);
    let lines;
    if ("r" in hit) {
      const n = cur.matrix[hit.r * K + hit.c];
      const ofTrue = s.rows[hit.r] > 0 ? (100 * n) / s.rows[hit.r] : 0;
      const ofPred = s.cols[hit.c] > 0 ? (100 * n) / s.cols[hit.c] : 0;
      lines = [
        `true: ${classes[hit.r]}`,
        `predicted: ${classes[hit.c]}`,
        `count: ${n.toLocaleString("en-US")}`,
        `${ofTrue.toFixed(1)} % of true ${classes[hit.r]}`,
        `${ofPred.toFixed(1)} % of predicted ${classes[hit.c]}`,
      ];
    } else {
      const k = hit.k;
      lines = [
        `class: ${classes[k]}`,
        `recall: ${(100 * s.recall[k]).toFixed(1)} % of ${s.rows[k]} true`,
        `precision: ${(100 * s.precision[k]).toFixed(1)} % of ${s.cols[k]} predicted`,
      ];
    }
    tooltip.textContent = lines.join("\n");
    tooltip.style.display = "block";
    const stageTop = stage.offsetTop;
    const stageLeft = stage.offsetLeft;
    const tw = tooltip.offsetWidth;
    const left = hit.x + 14 + tw > root.clientWidth ? hit.x - tw - 10 : hit.x + 14;
    tooltip.style.left = `${stageLeft + Math.max(0, left)}px`;
    tooltip.style.top = `${stageTop + hit.y + 14}px`;
    drawOverlay();
  }

  function onLeave() {
    view.hover = null;
    tooltip.style.display = "none";
    drawOverlay();
  }

  /** @param {MouseEvent} ev */
  function onClick(ev) {
    const hit = hitTest(ev);
    if (!hit || !("r" in hit)) return;
    const same = view.selected && view.selected.r === hit.r && view.selected.c === hit.c;
    view.selected = same ? null : { r: hit.r, c: hit.c };
    drawOverlay();
    showGallery();
    link.send({ kind: "cell", cell: view.selected ? [view.selected.r, view.selected.c] : null });
  }

  // --- linking: a projector's selected points -> their cells -------------------------------
  /** @param {any} message */
  function onLinked(message) {
    if (message?.kind !== "points") return;
    view.linked = message.cells?.length ? message.cells : null;
    showLinked();
    drawOverlay();
  }
  function showLinked() {
    const cells = view.linked;
    linked.hidden = !cells;
    if (!cells) {
      delete root.dataset.linked;
      return;
    }
    const classes = model.get("classes") || [];
    const total = cells.reduce((sum, cell) => sum + cell[2], 0);
    const parts = cells.slice(0, 6).map(([r, c, n]) => `${classes[r]} → ${classes[c]}: ${n}`);
    if (cells.length > 6) parts.push(`${cells.length - 6} more cells`);
    linked.textContent = `${plural(total, "selected point")} in the projector (true → predicted): ${parts.join(", ")}`;
    root.dataset.linked = cells.map(([r, c, n]) => `${r},${c},${n}`).join(";");
  }
  let link = joinLink(model.get("link_channel"), onLinked);
  const onChannel = () => {
    link.close();
    link = joinLink(model.get("link_channel"), onLinked);
    view.linked = null;
    showLinked();
    drawOverlay();
  };
  model.on("change:link_channel", onChannel);

  /** What the gallery's thumbnails show now (see showGallery). */
  const shownGrid = { key: "", pixels: new Uint8Array(0) };

  function showGallery() {
    if (!view.selected) {
      galleryBody.replaceChildren();
      shownGrid.key = "";
      gallery.hidden = true;
      return;
    }
    gallery.hidden = false;
    const classes = model.get("classes") || [];
    const { r, c } = view.selected;
    const K = data.K;
    const cur = current();
    const n = cur.matrix[r * K + c];
    const ids = data.examples.get(r * K + c) || [];
    const latest = model.get("epoch");
    const note = cur.live || cur.n === 0 || view.position === cur.n - 1 ? "" : ` · examples from epoch ${latest}`;
    galleryLabel.textContent = `true ${classes[r]} → predicted ${classes[c]}: ${plural(n, "sample")}, ${ids.length} shown${note}`;
    const images = data.images;
    const explainable = Boolean(model.get("cam_status"));
    if (explainable && ids.length) {
      galleryLabel.textContent += " · click one to see where the model looked";
    }
    const exampleIds = explainable && data.ids ? ids.map((i) => Number(data.ids.data[i])) : null;
    if (!exampleIds?.includes(/** @type {number} */ (view.example))) view.example = null; // it left the sample
    // The thumbnails are rebuilt only when what they show changed: a push that re-sends the
    // same examples leaves them in place, so a click on one is never lost to a redraw.
    const [, th, tw] = images ? images.shape : [0, 0, 0];
    const size = th * tw * 3;
    const pixels = new Uint8Array(ids.length * size);
    for (const [k, i] of ids.entries()) pixels.set(images.data.subarray(i * size, (i + 1) * size), k * size);
    const key = `${th}x${tw}|${exampleIds ?? ids}|${view.example}`;
    if (key !== shownGrid.key || !sameBytes(pixels, shownGrid.pixels)) {
      shownGrid.key = key;
      shownGrid.pixels = pixels;
      galleryBody.replaceChildren(thumbnails(ids.length, th, tw, pixels, exampleIds));
    }
    if (view.example === null) {
      why.remove();
    } else {
      if (why.parentNode !== galleryBody) galleryBody.appendChild(why);
      showWhy(r * K + c);
    }
  }

  function sameBytes(/** @type {Uint8Array} */ a, /** @type {Uint8Array} */ b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /** The gallery's grid: a canvas per example, a button per example where maps can be asked. */
  function thumbnails(
    /** @type {number} */ n,
    /** @type {number} */ th,
    /** @type {number} */ tw,
    /** @type {Uint8Array} */ pixels,
    /** @type {number[] | null} */ exampleIds,
  ) {
    const grid = h("div", { class: "nbviz-confusion__thumbs" });
    if (!n) {
      grid.appendChild(
        h("span", { class: "nbviz-confusion__empty" }, "no examples: pass inputs= to update() to sample images"),
      );
    }
    for (let k = 0; k < n; k++) {
      const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-confusion__thumb" }));
      canvas.width = tw;
      canvas.height = th;
      const im = new ImageData(tw, th);
      const off = k * th * tw * 3;
      for (let p = 0; p < th * tw; p++) {
        im.data[4 * p] = pixels[off + 3 * p];
        im.data[4 * p + 1] = pixels[off + 3 * p + 1];
        im.data[4 * p + 2] = pixels[off + 3 * p + 2];
        im.data[4 * p + 3] = 255;
      }
      /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d")).putImageData(im, 0, 0);
      if (!exampleIds) {
        grid.appendChild(canvas);
        continue;
      }
      const id = exampleIds[k];
      const chosen = id === view.example;
      const button = h(
        "button",
        {
          class: `nbviz-confusion__thumb-button${chosen ? " nbviz-confusion__thumb-button--chosen" : ""}`,
          type: "button",
          "aria-pressed": String(chosen),
          "aria-label": `example ${k + 1}: where did the model look?`,
          "data-example": String(id),
        },
        [canvas],
      );
      button.addEventListener("click", () => {
        view.example = view.example === id ? null : id;
        showGallery();
      });
      grid.appendChild(button);
    }
    return grid;
  }

  /** The chosen example's maps for its true and predicted class, or a note on when they come. */
  function showWhy(/** @type {number} */ cell) {
    const id = /** @type {number} */ (view.example);
    const classes = model.get("classes") || [];
    const K = data.K;
    const r = Math.floor(cell / K);
    const c = cell % K;
    const cam = data.cam;
    const e = cam.row.get(id);
    const method = model.get("cam_method") || "gradcam";
    const name = METHOD_NAMES[/** @type {keyof typeof METHOD_NAMES} */ (method)] || method;
    whyLabel.textContent =
      r === c
        ? `${name}: where the model saw ${classes[r]} (predicted correctly)`
        : `${name}: true ${classes[r]}, predicted ${classes[c]}`;
    const ready = e !== undefined && cam.maps && cam.images && cam.index.length;
    whyControls.hidden = !ready;
    for (const p of whyPanels) p.box.hidden = !ready;
    if (!ready) {
      const status = model.get("cam_status");
      whyNote.textContent =
        status === "error" ? model.get("cam_error") : WAITING[/** @type {keyof typeof WAITING} */ (status)] || "";
      // The kernel computes the cell's maps when it is free (a busy one: after its cell).
      if ((status === "end of cell" || status === "on click") && !asked.has(cell)) {
        asked.add(cell); // once per cell until maps come: pushes redraw the gallery often
        model.send({ explain: cell });
      }
      return;
    }
    const row = /** @type {number} */ (e);
    const L = cam.index.length;
    layerSlider.max = String(L - 1);
    const li = view.layer < 0 || view.layer >= L ? L - 1 : view.layer;
    layerSlider.value = String(li);
    const entry = cam.index[li];
    layerName.textContent = `${entry.layer} (${entry.h}×${entry.w})`;
    layerName.title = entry.layer;
    maskLabel.hidden = !cam.masks;
    maskToggle.checked = view.outline;
    const [, H, W] = /** @type {any} */ (cam.images).shape;
    let base = whyImages.get(id);
    if (!base) {
      const start = row * H * W * 3;
      base = imageRGBA(/** @type {any} */ (cam.images).data.subarray(start, start + H * W * 3), H, W, WHY_SIZE);
      whyImages.set(id, base);
    }
    let mask = null;
    if (cam.masks && view.outline) {
      const [, mh, mw] = cam.masks.shape;
      mask = {
        data: cam.masks.data.subarray(row * mh * mw, /** @type {number} */ (e + 1) * mh * mw),
        h: mh,
        w: mw,
      };
    }
    const n = entry.h * entry.w;
    const notes = [];
    const shown = r === c ? [0] : [0, 1];
    whyPanels[1].box.hidden = r === c;
    for (const t of shown) {
      const start = entry.offset + (row * 2 + t) * n;
      const raw = /** @type {any} */ (cam.maps).data.subarray(start, start + n);
      const { frame, empty } = overlayFrame(base, raw, entry.h, entry.w, WHY_SIZE, inferno, WHY_OPACITY, mask);
      const ctx = /** @type {CanvasRenderingContext2D} */ (whyPanels[t].canvas.getContext("2d"));
      const img = ctx.createImageData(WHY_SIZE, WHY_SIZE);
      img.data.set(frame);
      ctx.putImageData(img, 0, 0);
      const k = t === 0 ? r : c;
      const prob = cam.probs ? cam.probs.data[row * 2 + t] : NaN;
      whyPanels[t].caption.textContent = `${t === 0 ? "true" : "predicted"}: ${classes[k]} (p = ${prob.toFixed(2)})`;
      whyPanels[t].canvas.setAttribute("aria-label", `${name} map for ${classes[k]} at ${entry.layer}`);
      if (empty) notes.push(`the map for ${classes[k]} is empty at this layer (no positive evidence)`);
    }
    whyNote.textContent = notes.join("; ");
  }

  /** The drawn numbers as a table, for screen readers (and tests). */
  function fillTable(matrix, classes, K) {
    table.replaceChildren();
    if (K > TABLE_MAX_K) return;
    const head = h("tr", {}, [h("th", {}, "true \\ predicted")]);
    for (const c of classes) head.appendChild(h("th", { scope: "col" }, c));
    table.appendChild(head);
    for (let r = 0; r < K; r++) {
      const row = h("tr", {}, [h("th", { scope: "row" }, classes[r])]);
      for (let c = 0; c < K; c++) row.appendChild(h("td", {}, String(matrix[r * K + c])));
      table.appendChild(row);
    }
  }

  // Coalesce bursts of model changes into one draw per animation frame.
  let frame = 0;
  let dirtyData = true;
  function schedule(withData = false) {
    dirtyData = dirtyData || withData;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (dirtyData) readData();
      dirtyData = false;
      draw();
    });
  }

  const dataTraits = [
    "classes",
    "counts_index",
    "counts_value",
    "epoch",
    "epoch_open",
    "history_index",
    "history_value",
    "history_offsets",
    "examples_cells",
    "examples_images",
    "examples_ids",
    "cam_status",
    "cam_error",
    "cam_ids",
    "cam_maps",
    "cam_index",
    "cam_images",
    "cam_masks",
    "title",
  ];
  const onData = () => schedule(true);
  const onNormalize = () => {
    view.mode = model.get("normalize") || "none";
    modeSelect.value = view.mode;
    schedule();
  };
  for (const t of dataTraits) model.on(`change:${t}`, onData);
  model.on("change:normalize", onNormalize);

  modeSelect.addEventListener("change", () => {
    view.mode = /** @type {Mode} */ (modeSelect.value);
    schedule();
  });
  slider.addEventListener("input", () => {
    const n = epochs().length;
    view.position = Number(slider.value) - 1;
    view.followLatest = view.position >= n - 1;
    schedule();
  });
  layerSlider.addEventListener("input", () => {
    view.layer = Number(layerSlider.value);
    if (view.selected) showWhy(view.selected.r * data.K + view.selected.c);
  });
  maskToggle.addEventListener("change", () => {
    view.outline = maskToggle.checked;
    if (view.selected) showWhy(view.selected.r * data.K + view.selected.c);
  });
  overlay.addEventListener("mousemove", onMove);
  overlay.addEventListener("mouseleave", onLeave);
  overlay.addEventListener("click", onClick);
  const resize = new ResizeObserver(() => schedule());
  resize.observe(root);
  const unwatch = watchTheme(() => schedule());
  schedule(true);

  return () => {
    for (const t of dataTraits) model.off(`change:${t}`, onData);
    model.off("change:normalize", onNormalize);
    model.off("change:link_channel", onChannel);
    link.close();
    resize.disconnect();
    unwatch();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
