// @ts-check
// Grad-CAM explorer (nbviz/cam/widget.py). Every map arrives once, as uint8 at
// its layer's own resolution; picking the image, layer, class, method, opacity,
// threshold and colour map only redraws from that data, so nothing goes back
// to the kernel (it works while the kernel is busy, and in a saved notebook).
// Images show their map over them; signals (kind "signal") are curves over a
// tint of their map, with the map as a coloured band below; volumes (kind
// "volume") are shown slice by slice, a slider picking the slice.
// The chart under the view scores each layer's maps: against human masks (masks=), and
// against the model itself (faithfulness=True: deletion / insertion AUCs, similarity to
// the maps of a randomised model), all computed in Python and sent with the maps.
import "./lib/common.css";
import "./cam.css";
import { interpolateCividis, interpolateInferno, interpolateViridis } from "d3-scale-chromatic";
import { decodeArray } from "./lib/arrays.js";
import {
  availableMetrics,
  axisY,
  bestLayer,
  betterText,
  blend,
  CHANNEL_COLORS,
  chartTitle,
  classChoices,
  depthSlice,
  emptyMapNote,
  formatScore,
  isEmpty,
  layerMeans,
  linePoints,
  metricAxis,
  metricNote,
  metricOf,
  normalize,
  outline,
  scale,
  signalRange,
  upsample,
} from "./lib/cam-math.js";
import { colorTable, parseColor } from "./lib/colors.js";
import { coalesce, el as h, svgEl as svg, themeColors, watchTheme } from "./lib/dom.js";
import { imageRGBA } from "./lib/overlay.js";
import { shortLabels } from "./lib/text.js";

/**
 * @typedef {import("./lib/arrays.js").WireArray} WireArray
 * @typedef {Object} MapEntry
 * @property {string} method
 * @property {string} layer
 * @property {number} d           depth (volumes; 1 otherwise)
 * @property {number} h           height (1 for signals)
 * @property {number} w           width (a signal map's length)
 * @property {number} offset      start of this layer's (N, T, d, h, w) uint8 block in `maps`
 * @property {(number | null)[][][] | null} agreement  [target][image] -> [pointing, energy, iou,
 *   deletion AUC, insertion AUC, randomised similarity], null where not computed
 * @property {boolean} no_gradient  no gradient reached the layer (its maps are empty)
 * @typedef {Object} GradCAMState
 * @property {string} title
 * @property {string[]} classes
 * @property {"image" | "signal" | "volume"} kind
 * @property {WireArray | null} images  (N, H, W, 3) uint8; volumes (N, D, H, W, 3); signals null
 * @property {WireArray | null} signals (N, C, L) float32 for kind "signal"
 * @property {number[] | null} labels true class per image
 * @property {WireArray | null} masks (N, H, W) uint8 0/1
 * @property {string[]} methods
 * @property {WireArray} maps         every map, uint8
 * @property {MapEntry[]} maps_index
 * @property {WireArray} targets      (N, T) classes explained per image
 * @property {WireArray} probs        (N, T) their probabilities
 * @property {number} topk            columns 0..topk-1 are predictions; column topk the true class
 * @property {string} method          initial method
 * @property {number} opacity         initial opacity
 * @property {string} colormap        initial colour map
 * @property {{baseline: string, steps: number, score: string, seed: number} | null} faithfulness_settings
 *   how the faithfulness numbers were computed (faithfulness=True), else null
 */

const METHOD_NAMES = {
  gradcam: "Grad-CAM",
  "gradcam++": "Grad-CAM++",
  layercam: "Layer-CAM",
  saliency: "Saliency (gradient)",
  smoothgrad: "SmoothGrad",
  integrated_gradients: "Integrated gradients",
  rollout: "Attention rollout",
};
const COLORMAPS = { inferno: interpolateInferno, viridis: interpolateViridis, cividis: interpolateCividis };
const SIZE = 256; // px: the image and its overlay
// A signal's view: curves over a tint of the map (PLOT px high), then the map as a band.
const SIGNAL = { width: 512, plot: 168, gap: 6, band: 22 };
const SIGNAL_HEIGHT = SIGNAL.plot + SIGNAL.gap + SIGNAL.band;
const THUMB = { width: 88, height: 36 }; // px: a signal's thumbnail
const NAME_MAX = 32; // characters of a class name in the class selector (~240 px; the full name on hover)
/** @type {Map<string, Uint8Array>} */
const tables = new Map();
/** @param {string} name */
function lut(name) {
  if (!tables.has(name))
    tables.set(name, colorTable(COLORMAPS[/** @type {keyof typeof COLORMAPS} */ (name)] || interpolateInferno).lut);
  return /** @type {Uint8Array} */ (tables.get(name));
}

/** @param {{ model: import("@anywidget/types").AnyModel<GradCAMState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "nbviz nbviz-cam" });
  el.appendChild(root);

  // --- skeleton -------------------------------------------------------------------------------
  const title = h("div", { class: "nbviz-title nbviz-cam__title" });
  const strip = h("div", { class: "nbviz-cam__strip", role: "listbox", "aria-label": "images" });
  const canvas = /** @type {HTMLCanvasElement} */ (
    h("canvas", { class: "nbviz-cam__canvas", width: String(SIZE), height: String(SIZE), role: "img" })
  );
  const caption = h("div", { class: "nbviz-cam__caption", role: "status" });
  const emptyNote = h("div", { class: "nbviz-cam__empty", role: "note" });
  emptyNote.hidden = true;
  const select = (/** @type {string} */ label, /** @type {string} */ cls) =>
    /** @type {HTMLSelectElement} */ (h("select", { class: `nbviz-control ${cls}`, "aria-label": label }));
  const range = (/** @type {string} */ label, /** @type {string} */ cls, max = "1", step = "0.01") =>
    /** @type {HTMLInputElement} */ (
      h("input", { type: "range", class: cls, min: "0", max, step, "aria-label": label })
    );
  const methodSelect = select("method", "nbviz-cam__method");
  const cmapSelect = select("colour map", "nbviz-cam__cmap");
  const layerSlider = range("layer", "nbviz-cam__layer", "0", "1");
  const layerLabel = h("span", { class: "nbviz-cam__value nbviz-cam__layer-name" });
  const sliceSlider = range("slice", "nbviz-cam__slice", "0", "1");
  const sliceLabel = h("span", { class: "nbviz-cam__value nbviz-cam__slice-name" });
  const sliceRow = h("div", { class: "nbviz-cam__row" }, [
    h("span", { class: "nbviz-cam__key" }, "slice"),
    sliceSlider,
    sliceLabel,
  ]);
  const opacitySlider = range("opacity", "nbviz-cam__opacity");
  const opacityLabel = h("span", { class: "nbviz-cam__value" });
  const thresholdSlider = range("threshold", "nbviz-cam__threshold");
  const thresholdLabel = h("span", { class: "nbviz-cam__value" });
  const maskToggle = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "nbviz-cam__mask" }));
  const maskLabel = h("label", { class: "nbviz-cam__check" }, [maskToggle, "outline the human mask"]);
  const classList = h("div", { class: "nbviz-cam__classes", role: "radiogroup", "aria-label": "class explained" });
  const legend = h("div", { class: "nbviz-cam__legend" });
  const row = (/** @type {string} */ name, /** @type {(string | Node)[]} */ parts) =>
    h("div", { class: "nbviz-cam__row" }, [h("span", { class: "nbviz-cam__key" }, name), ...parts]);
  const panel = h("div", { class: "nbviz-cam__panel" }, [
    row("method", [methodSelect]),
    row("layer", [layerSlider, layerLabel]),
    sliceRow,
    row("opacity", [opacitySlider, opacityLabel]),
    row("threshold", [thresholdSlider, thresholdLabel]),
    row("colours", [cmapSelect]),
    legend,
    maskLabel,
    h("div", { class: "nbviz-cam__key nbviz-cam__classes-head" }, "class explained"),
    classList,
  ]);
  const metricSelect = select("measure", "nbviz-cam__metric");
  const chart = h("div", { class: "nbviz-cam__chart" });
  const chartTitleEl = h("span", { class: "nbviz-cam__key nbviz-cam__chart-title" });
  const chartBetter = h("span", { class: "nbviz-cam__key nbviz-cam__better" });
  const chartHead = h("div", { class: "nbviz-cam__chart-head" }, [chartTitleEl, metricSelect, chartBetter]);
  const agreementBox = h("div", { class: "nbviz-cam__agreement" }, [chartHead, chart]);
  root.append(
    title,
    strip,
    h("div", { class: "nbviz-cam__main" }, [
      h("div", { class: "nbviz-cam__view" }, [canvas, caption, emptyNote]),
      panel,
    ]),
    agreementBox,
  );
  for (const name of Object.keys(COLORMAPS)) cmapSelect.appendChild(h("option", { value: name }, name));

  // --- data (from Python) and view state (browser only) ----------------------------------------
  /** @type {any} */
  let d = null;
  const view = {
    image: 0,
    slice: -1, // volumes: the slice shown (at first, the middle one)
    method: String(model.get("method") || ""),
    // The layer chosen last, by name: kept when the method changes (CAM methods share
    // their layers; input-gradient methods have only "input" and leave the choice alone).
    layerName: /** @type {string | null} */ (null),
    column: 0,
    opacity: Number(model.get("opacity") ?? 0.5),
    threshold: 0,
    cmap: String(model.get("colormap") || "inferno"),
    outline: false,
    metric: 1, // index in each image's scores (see MapEntry.agreement); the first computed one
  };
  /** Caches: upsampled maps and display-size images (cleared when data changes). */
  let cache = { maps: new Map(), images: new Map(), outlines: new Map() };
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  let frame = ctx.createImageData(SIZE, SIZE);
  /** @type {{control: string, ms: number}[]} Input-to-painted-canvas times, read by benchmarks/cam_browser.py. */
  const paints = [];
  /** @type {any} */ (root).nbvizPaints = paints;

  function readData() {
    const kind = model.get("kind") || "image";
    const images = decodeArray(model.get("images"));
    const signals = decodeArray(model.get("signals"));
    const maps = decodeArray(model.get("maps"));
    const targets = decodeArray(model.get("targets"));
    const probs = decodeArray(model.get("probs"));
    const masks = decodeArray(model.get("masks"));
    const index = /** @type {MapEntry[]} */ (model.get("maps_index") || []);
    const methods = /** @type {string[]} */ (model.get("methods") || []);
    /** @type {Record<string, MapEntry[]>} */
    const layers = {};
    for (const m of methods) layers[m] = index.filter((e) => e.method === m);
    d = {
      kind,
      images,
      signals,
      maps,
      targets,
      probs,
      masks,
      methods,
      layers,
      classes: /** @type {string[]} */ (model.get("classes") || []),
      short: /** @type {string[]} */ (shortLabels(model.get("classes") || [], NAME_MAX)),
      labels: /** @type {number[] | null} */ (model.get("labels")),
      k: Number(model.get("topk")),
      N: targets ? targets.shape[0] : 0,
      T: targets ? targets.shape[1] : 0,
      D: kind === "volume" && images ? images.shape[1] : 1, // slices of a volume
    };
    if (!methods.includes(view.method)) view.method = methods[0] || "";
    view.image = Math.min(view.image, Math.max(0, d.N - 1));
    view.column = Math.min(view.column, Math.max(0, d.T - 1));
    if (!index.some((e) => e.layer === view.layerName)) {
      // The deepest layer whose map shows something (a ViT's last block shows nothing
      // when the head reads only the class token), else the deepest.
      const list = layers[view.method] || [];
      const live = [...list].reverse().find((e) => !isEmpty(rawMap(e)));
      view.layerName = (live || list.at(-1))?.layer ?? null;
    }
    if (view.slice < 0 || view.slice >= d.D) view.slice = Math.floor(d.D / 2);
    d.settings = model.get("faithfulness_settings") || null;
    d.metrics = availableMetrics(
      index.map((e) => e.agreement),
      d.settings != null,
    );
    if (!d.metrics.some((m) => m.index === view.metric)) view.metric = d.metrics[0]?.index ?? 1;
    metricSelect.replaceChildren(...d.metrics.map((m) => h("option", { value: String(m.index) }, m.label)));
    cache = { maps: new Map(), images: new Map(), outlines: new Map() };
  }

  /** Index of the shown layer in the current method's list: the chosen one, else its deepest. */
  function layerIndex() {
    const list = d.layers[view.method] || [];
    const i = list.findIndex((e) => e.layer === view.layerName);
    return i >= 0 ? i : list.length - 1;
  }

  function entry() {
    return d.layers[view.method]?.[layerIndex()] ?? null;
  }

  /** Pick layer i of the current method (slider, chart). */
  function chooseLayer(i) {
    const list = d.layers[view.method] || [];
    if (list.length > 1 && list[i]) view.layerName = list[i].layer; // "input" alone is no choice
  }

  /** A map's size in words: 14×14 (images), 4×14×14 (volumes), 40 (signals). */
  function sizeText(/** @type {MapEntry} */ e) {
    if (d.kind === "signal") return `${e.w}`;
    return d.kind === "volume" ? `${e.d}×${e.h}×${e.w}` : `${e.h}×${e.w}`;
  }

  function showLayerName() {
    const e = entry();
    layerLabel.textContent = e ? `${e.layer} · ${sizeText(e)}` : "";
    layerLabel.title = layerLabel.textContent; // long module paths are cut by CSS
  }

  function showSlice() {
    sliceRow.hidden = d.kind !== "volume";
    sliceSlider.max = String(Math.max(0, d.D - 1));
    sliceSlider.value = String(view.slice);
    sliceLabel.textContent = `${view.slice + 1} of ${d.D}`;
  }

  /** A map's uint8 values at its own resolution (the current image and class). */
  function rawMap(/** @type {MapEntry} */ e) {
    const n = (e.d || 1) * e.h * e.w;
    const start = e.offset + (view.image * d.T + view.column) * n;
    return d.maps.data.subarray(start, start + n);
  }

  /** The current map at the view's size, in [0, 1]: SIZE x SIZE (a volume's current
   * slice: scaled by the whole volume's peak), or SIGNAL.width values for a signal. */
  function currentMap() {
    const e = entry();
    if (!e) return null;
    const key = `${view.method}|${e.layer}|${view.image}|${view.column}|${view.slice}`;
    let v = cache.maps.get(key);
    if (!v) {
      if (d.kind === "signal") v = normalize(upsample(rawMap(e), 1, e.w, 1, SIGNAL.width));
      else if (d.kind === "volume") {
        const slice = depthSlice(rawMap(e), e.d, e.h, e.w, view.slice, d.D);
        v = scale(upsample(slice, e.h, e.w, SIZE, SIZE), 1 / 255);
      } else v = normalize(upsample(rawMap(e), e.h, e.w, SIZE, SIZE));
      if (cache.maps.size > 256) cache.maps.clear();
      cache.maps.set(key, v);
    }
    return v;
  }

  /** The (H, W, 3) pixels of image i (a volume's slice z) in the `images` array. */
  function imageSource(i, z = 0) {
    const sh = d.images.shape;
    const [H, W] = sh.slice(-3, -1);
    const start = (i * d.D + z) * H * W * 3;
    return { H, W, src: d.images.data.subarray(start, start + H * W * 3) };
  }

  /** RGBA pixels of an image (a volume's current slice) at SIZE x SIZE (bilinear, via an
   * offscreen canvas). */
  function imagePixels(i, z = view.slice) {
    const key = `${i}|${d.kind === "volume" ? z : 0}`;
    let px = cache.images.get(key);
    if (!px) {
      const { H, W, src } = imageSource(i, d.kind === "volume" ? z : 0);
      px = imageRGBA(src, H, W, SIZE);
      if (cache.images.size > 512) cache.images.clear();
      cache.images.set(key, px);
    }
    return px;
  }

  function maskOutline(i) {
    let o = cache.outlines.get(i);
    if (!o && d.masks) {
      const [, H, W] = d.masks.shape;
      o = outline(d.masks.data.subarray(i * H * W, (i + 1) * H * W), H, W, SIZE, SIZE);
      cache.outlines.set(i, o);
    }
    return o;
  }

  // --- drawing ---------------------------------------------------------------------------------
  /**
   * Redraw the overlay now; `start` is the event's time stamp, to measure input to paint.
   * @param {number} [start]
   * @param {string} [control]
   */
  function paint(start = performance.now(), control = "") {
    if (!d || !d.N) return;
    if (d.kind === "signal") paintSignal(currentMap());
    else paintImage(currentMap());
    const ms = performance.now() - start;
    paints.push({ control, ms });
    if (paints.length > 1000) paints.shift();
    root.dataset.paintMs = ms.toFixed(2);
    root.dataset.paints = String(Number(root.dataset.paints || 0) + 1);
    updateCaption();
  }

  /** @param {Float32Array | null} values */
  function paintImage(values) {
    const base = imagePixels(view.image);
    if (values) blend(base, values, lut(view.cmap), view.opacity, view.threshold, frame.data);
    else frame.data.set(base);
    if (view.outline && d.masks) {
      const o = maskOutline(view.image);
      for (let p = 0; p < o.length; p++) {
        if (!o[p]) continue;
        // White: apart from the top of inferno and cividis, no colour map uses it.
        const q = 4 * p;
        frame.data[q] = frame.data[q + 1] = frame.data[q + 2] = 255;
      }
    }
    ctx.putImageData(frame, 0, 0);
  }

  /**
   * A signal: its map as a tint behind the curves (blended over the page's background
   * as over an image) and as a band below them (at full opacity), then the curves.
   * @param {Float32Array | null} values
   */
  function paintSignal(values) {
    const W = SIGNAL.width;
    const theme = themeColors(root);
    const bg = parseColor(toRgb(theme.background));
    const row = new Uint8ClampedArray(4 * W);
    for (let x = 0; x < W; x++) row.set([bg[0], bg[1], bg[2], 255], 4 * x);
    const tint = new Uint8ClampedArray(4 * W);
    const band = new Uint8ClampedArray(4 * W);
    if (values) {
      blend(row, values, lut(view.cmap), view.opacity, view.threshold, tint);
      blend(row, values, lut(view.cmap), 1, view.threshold, band);
    } else {
      tint.set(row);
      band.set(row);
    }
    for (let y = 0; y < SIGNAL_HEIGHT; y++) {
      const src = y < SIGNAL.plot ? tint : y < SIGNAL.plot + SIGNAL.gap ? row : band;
      frame.data.set(src, 4 * W * y);
    }
    ctx.putImageData(frame, 0, 0);
    drawCurves(ctx, view.image, W, SIGNAL.plot, theme.foreground, 1.5);
  }

  /** The curves of signal i, each channel in its colour (the first in `first`). */
  function drawCurves(c, i, W, H, first, width) {
    const [, C, L] = d.signals.shape;
    const range = signalRange(d.signals.data, i * C * L, C * L);
    c.lineWidth = width;
    c.lineJoin = "round";
    for (let ch = C - 1; ch >= 0; ch--) {
      const pts = linePoints(d.signals.data, (i * C + ch) * L, L, range, W, H);
      c.strokeStyle = ch === 0 ? first : CHANNEL_COLORS[(ch - 1) % CHANNEL_COLORS.length];
      c.beginPath();
      c.moveTo(pts[0], pts[1]);
      for (let p = 2; p < pts.length; p += 2) c.lineTo(pts[p], pts[p + 1]);
      c.stroke();
    }
  }

  /** Any CSS colour as "rgb(r, g, b)" (the canvas parses it). */
  function toRgb(/** @type {string} */ color) {
    const probe = /** @type {CanvasRenderingContext2D} */ (document.createElement("canvas").getContext("2d"));
    probe.fillStyle = color;
    probe.fillRect(0, 0, 1, 1);
    const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
    return `rgb(${r}, ${g}, ${b})`;
  }

  function updateCaption() {
    const e = entry();
    const cls = d.targets.data[view.image * d.T + view.column];
    const name = d.classes[cls] ?? String(cls);
    // An all-zero map shows the plain image: say so, and what it means.
    const empty = e != null && isEmpty(rawMap(e));
    emptyNote.textContent = empty ? emptyMapNote(view.method, name, e.layer, e.no_gradient) : "";
    emptyNote.hidden = !empty;
    root.dataset.empty = String(empty);
    const label = d.labels?.[view.image];
    const truth = label != null ? `, true class ${d.classes[label] ?? label}` : "";
    const where = d.kind === "volume" ? `, slice ${view.slice + 1} of ${d.D}` : "";
    caption.textContent = `${d.kind} ${view.image + 1} of ${d.N}${where}${truth} · explaining “${name}” · ${METHOD_NAMES[view.method] || view.method}${e && e.layer !== "input" ? ` at ${e.layer}` : ""}`;
    canvas.setAttribute("aria-label", caption.textContent);
  }

  // --- controls --------------------------------------------------------------------------------
  /** A thumbnail: the image, a volume's maximum-intensity projection along depth (its
   * bright structures, whichever slice they are in), or the signal's curves. */
  function thumbnail(i) {
    if (d.kind === "signal") {
      const c = /** @type {HTMLCanvasElement} */ (
        h("canvas", {
          class: "nbviz-cam__thumb nbviz-cam__thumb--signal",
          width: String(THUMB.width),
          height: String(THUMB.height),
        })
      );
      const tctx = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
      drawCurves(tctx, i, THUMB.width, THUMB.height, themeColors(root).foreground, 1);
      return c;
    }
    const { H, W, src: first } = imageSource(i, 0);
    let src = first;
    if (d.D > 1) {
      src = new Uint8Array(first);
      for (let z = 1; z < d.D; z++) {
        const slice = imageSource(i, z).src;
        for (let p = 0; p < src.length; p++) if (slice[p] > src[p]) src[p] = slice[p];
      }
    }
    const c = /** @type {HTMLCanvasElement} */ (
      h("canvas", { class: "nbviz-cam__thumb", width: String(W), height: String(H) })
    );
    const tctx = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
    const img = tctx.createImageData(W, H);
    for (let p = 0; p < H * W; p++) {
      img.data.set(src.subarray(3 * p, 3 * p + 3), 4 * p);
      img.data[4 * p + 3] = 255;
    }
    tctx.putImageData(img, 0, 0);
    return c;
  }

  function buildStrip() {
    strip.replaceChildren();
    for (let i = 0; i < d.N; i++) {
      const c = thumbnail(i);
      c.setAttribute("role", "option");
      c.setAttribute("tabindex", "0");
      const label = d.labels?.[i];
      c.title = `${d.kind} ${i + 1}${label != null ? `: ${d.classes[label] ?? label}` : ""}`;
      c.setAttribute("aria-label", c.title);
      const pick = (/** @type {Event} */ ev) => {
        view.image = i;
        syncControls();
        paint(ev.timeStamp, "image");
      };
      c.addEventListener("click", pick);
      c.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") pick(ev);
      });
      strip.appendChild(c);
    }
  }

  function buildClasses() {
    classList.replaceChildren();
    const label = d.labels?.[view.image] ?? null;
    const choices = classChoices(d.targets.data, d.probs.data, d.T, view.image, d.k, label);
    if (!choices.some((c) => c.column === view.column)) {
      const same = choices.find((c) => c.cls === d.targets.data[view.image * d.T + view.column]);
      view.column = same ? same.column : 0;
    }
    for (const c of choices) {
      const input = /** @type {HTMLInputElement} */ (
        h("input", { type: "radio", name: `cls-${uid}`, value: String(c.column) })
      );
      input.checked = c.column === view.column;
      input.addEventListener("change", (ev) => {
        view.column = c.column;
        buildClasses();
        renderChart();
        paint(ev.timeStamp, "class");
      });
      const name = d.classes[c.cls] ?? String(c.cls);
      const rank = c.rank != null ? `#${c.rank}` : "";
      const parts = [
        h("span", { class: "nbviz-cam__rank" }, rank),
        h("span", { class: "nbviz-cam__cls", title: name }, d.short[c.cls] ?? name),
        h("span", { class: "nbviz-cam__prob" }, `${(100 * c.prob).toFixed(1)}%`),
      ];
      if (c.isTrue) parts.push(h("span", { class: "nbviz-cam__true" }, "true"));
      classList.appendChild(h("label", { class: "nbviz-cam__choice" }, [input, ...parts]));
    }
  }

  function syncControls() {
    const layers = d.layers[view.method] || [];
    layerSlider.max = String(Math.max(0, layers.length - 1));
    layerSlider.value = String(Math.max(0, layerIndex()));
    layerSlider.disabled = layers.length < 2;
    showLayerName();
    showSlice();
    opacitySlider.value = String(view.opacity);
    opacityLabel.textContent = view.opacity.toFixed(2);
    thresholdSlider.value = String(view.threshold);
    thresholdLabel.textContent = view.threshold.toFixed(2);
    methodSelect.value = view.method;
    cmapSelect.value = view.cmap;
    maskToggle.checked = view.outline;
    maskLabel.hidden = !d.masks; // no masks given: no control
    for (const [i, t] of [...strip.children].entries()) t.setAttribute("aria-selected", String(i === view.image));
    buildClasses();
    renderLegend();
    renderChart();
  }

  function renderLegend() {
    const bar = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-cam__bar", width: "256", height: "1" }));
    const bctx = /** @type {CanvasRenderingContext2D} */ (bar.getContext("2d"));
    const img = bctx.createImageData(256, 1);
    const table = lut(view.cmap);
    // Drawn as the overlay is: the colour's weight grows with the value, so the low end
    // fades into what is behind it (the page here, the image in the view).
    for (let i = 0; i < 256; i++) img.data.set([table[3 * i], table[3 * i + 1], table[3 * i + 2], i], 4 * i);
    bctx.putImageData(img, 0, 0);
    legend.replaceChildren(
      bar,
      h("div", { class: "nbviz-cam__ticks" }, [
        h("span", {}, "0"),
        h("span", {}, "0.5"),
        h("span", {}, "1 = the map's peak"),
      ]),
    );
  }

  /** Bars: a metric's mean over all images per layer; a dot: the current image. */
  function renderChart() {
    const entries = d.layers[view.method] || [];
    const has = d.metrics.length > 0 && entries.some((e) => e.agreement);
    agreementBox.hidden = !has;
    if (!has) return;
    const metric = metricOf(view.metric);
    metricSelect.value = String(metric.index);
    chartTitleEl.textContent = chartTitle(metric);
    chartBetter.textContent = betterText(metric.better);
    const means = layerMeans(
      entries.map((e) => e.agreement),
      view.column,
      metric.index,
    );
    const mine = entries.map((e) => e.agreement?.[view.column]?.[view.image]?.[metric.index] ?? null);
    const axis = metricAxis(metric);
    const W = Math.max(240, Math.min(640, 36 * entries.length + 40));
    const Hh = metric.range[0] < 0 ? 150 : 120, // room for five ticks on a -1..1 axis
      left = 30,
      bottom = 18,
      top = 8;
    const bw = (W - left - 4) / Math.max(1, entries.length);
    const y = (/** @type {number} */ v) => axisY(axis, v, top, Hh - bottom);
    const s = svg("svg", { width: W, height: Hh, viewBox: `0 0 ${W} ${Hh}`, role: "img" });
    s.setAttribute("aria-label", `${chartTitle(metric)} ${metric.label}, ${betterText(metric.better)}`);
    for (const t of axis.ticks) {
      const zero = t === axis.base && axis.lo < 0;
      s.append(
        svg("line", {
          x1: left,
          x2: W - 4,
          y1: y(t),
          y2: y(t),
          class: `nbviz-cam__grid${zero ? " nbviz-cam__grid--zero" : ""}`,
        }),
      );
      const label = svg("text", { x: left - 4, y: y(t) + 4, "text-anchor": "end", class: "nbviz-cam__axis" });
      label.textContent = String(t);
      s.append(label);
    }
    const best = bestLayer(means, metric.better);
    entries.forEach((e, i) => {
      const m = means[i];
      const x = left + i * bw;
      const g = svg("g", { class: "nbviz-cam__barg" });
      const end = y(m ?? axis.base);
      const rect = svg("rect", {
        x: x + 2,
        y: Math.min(end, y(axis.base)),
        width: Math.max(2, bw - 4),
        height: Math.abs(y(axis.base) - end),
        class: `nbviz-cam__bar-rect${i === layerIndex() ? " nbviz-cam__bar-rect--current" : ""}`,
      });
      // The whole column picks the layer, also where the bar is short or missing.
      const hit = svg("rect", { x, y: top, width: bw, height: Hh - bottom - top, class: "nbviz-cam__bar-hit" });
      const tip = svg("title");
      tip.textContent = `${e.layer}: mean ${formatScore(m)}${mine[i] != null ? `, this image ${formatScore(mine[i])}` : ""}`;
      g.append(hit, rect, tip);
      if (mine[i] != null)
        g.append(svg("circle", { cx: x + bw / 2, cy: y(Number(mine[i])), r: 3, class: "nbviz-cam__dot" }));
      if (m == null) {
        // No value (every map of this layer is empty): say so, lest a missing bar read as 0.
        const na = svg("text", {
          x: x + bw / 2,
          y: y(axis.base) - 4,
          "text-anchor": "middle",
          class: "nbviz-cam__axis nbviz-cam__na",
        });
        na.textContent = "n/a";
        g.append(na);
      }
      const tick = svg("text", { x: x + bw / 2, y: Hh - 4, "text-anchor": "middle", class: "nbviz-cam__axis" });
      tick.textContent = String(i + 1);
      g.append(tick);
      g.addEventListener("click", (ev) => {
        chooseLayer(i);
        syncControls();
        paint(ev.timeStamp, "chart");
      });
      s.append(g);
    });
    const note =
      best >= 0
        ? `best: ${entries[best].layer} (${formatScore(means[best])}); bars: mean of all images, dot: this image`
        : "no values for this class: bars and dots are left out";
    const about = metricNote(metric, d.settings);
    chart.replaceChildren(
      s,
      h("div", { class: "nbviz-cam__note" }, note),
      ...(about ? [h("div", { class: "nbviz-cam__note nbviz-cam__metric-note" }, about)] : []),
    );
  }

  // Controls act on the view alone, then repaint at once (no animation frame: the
  // input-to-paint time is what the benchmark measures).
  methodSelect.addEventListener("change", (ev) => {
    view.method = methodSelect.value;
    syncControls();
    paint(ev.timeStamp, "method");
  });
  cmapSelect.addEventListener("change", (ev) => {
    view.cmap = cmapSelect.value;
    renderLegend();
    paint(ev.timeStamp, "colours");
  });
  sliceSlider.addEventListener("input", (ev) => {
    view.slice = Number(sliceSlider.value);
    showSlice();
    paint(ev.timeStamp, "slice");
  });
  layerSlider.addEventListener("input", (ev) => {
    chooseLayer(Number(layerSlider.value));
    showLayerName();
    renderChart();
    paint(ev.timeStamp, "layer");
  });
  opacitySlider.addEventListener("input", (ev) => {
    view.opacity = Number(opacitySlider.value);
    opacityLabel.textContent = view.opacity.toFixed(2);
    paint(ev.timeStamp, "opacity");
  });
  thresholdSlider.addEventListener("input", (ev) => {
    view.threshold = Number(thresholdSlider.value);
    thresholdLabel.textContent = view.threshold.toFixed(2);
    paint(ev.timeStamp, "threshold");
  });
  maskToggle.addEventListener("change", (ev) => {
    view.outline = maskToggle.checked;
    paint(ev.timeStamp, "mask");
  });
  metricSelect.addEventListener("change", () => {
    view.metric = Number(metricSelect.value);
    renderChart();
  });

  const uid = Math.random().toString(36).slice(2);
  function full() {
    readData();
    const signal = d.kind === "signal";
    root.classList.toggle("nbviz-cam--signal", signal);
    canvas.width = signal ? SIGNAL.width : SIZE;
    canvas.height = signal ? SIGNAL_HEIGHT : SIZE;
    frame = ctx.createImageData(canvas.width, canvas.height);
    title.textContent = model.get("title") || "";
    title.hidden = !title.textContent;
    methodSelect.replaceChildren(...d.methods.map((m) => h("option", { value: m }, METHOD_NAMES[m] || m)));
    buildStrip();
    syncControls();
    paint();
    prewarm();
  }

  /** Scale the other images in idle time, so a click on the strip only blends. */
  function prewarm() {
    const idle = window.requestIdleCallback || ((/** @type {() => void} */ f) => setTimeout(f, 50));
    let next = 0;
    const step = () => {
      if (!d || next >= d.N || d.kind === "signal") return;
      imagePixels(next++);
      idle(step);
    };
    idle(step);
  }
  full();
  const onChange = coalesce(full, queueMicrotask); // maps and maps_index change together
  model.on("change:maps", onChange);
  model.on("change:maps_index", onChange);
  const unwatch = watchTheme(() => {
    renderChart();
    if (d?.kind === "signal") {
      buildStrip(); // curves in the text colour
      syncControls();
      paint();
    }
  });
  return () => {
    model.off("change:maps", onChange);
    model.off("change:maps_index", onChange);
    unwatch();
  };
}

export default { render };
