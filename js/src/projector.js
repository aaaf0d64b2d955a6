// @ts-check
// Embedding projector (nbviz/projector/widget.py): a WebGL scatter of a data set's layer
// embeddings (regl-scatterplot). Hover, colouring, class search, the epoch slider, a
// point's neighbours and the lasso gallery all use data already in the browser: nothing
// here asks the kernel.
import "./lib/common.css";
import "./projector.css";
import createScatterplot from "regl-scatterplot";
import { decodeArray } from "./lib/arrays.js";
import { colorTable, css } from "./lib/colors.js";
import { coalesce, coalesceAsync, el as h, themeColors, watchTheme } from "./lib/dom.js";
import {
  bounds,
  COLOR_MODES,
  colorValues,
  frameXY,
  itemsOfClasses,
  matchClasses,
  neighboursOf,
  palette,
} from "./lib/projector-math.js";
import { plural } from "./lib/text.js";

/**
 * @typedef {import("./lib/arrays.js").WireArray} WireArray
 * @typedef {Object} ProjectorState
 * @property {string[]} classes          class names, index = class
 * @property {string} title
 * @property {string} layer              the module the vectors come from
 * @property {string} status             what was embedded and what was left out
 * @property {string[]} frame_labels     one per frame (epoch slider)
 * @property {number[][]} explained      per frame, each PC's share of the variance
 * @property {WireArray | null} labels       (N,) int32 true classes
 * @property {WireArray | null} thumbnails   (N, h, w, 3) uint8
 * @property {WireArray | null} coords       (F, N, 2) float32, NaN: left out
 * @property {WireArray | null} predicted    (F, N) int32, -1: left out
 * @property {WireArray | null} confidence   (F, N) float32 softmax of the prediction
 * @property {WireArray | null} loss         (F, N) float32 cross-entropy of the true class
 * @property {WireArray | null} neighbours   (F, N, k) int32 item numbers, -1: none
 */

const HEIGHT = 440; // px
const THUMB = 56; // px: thumbnails in the tooltip, neighbour strip and gallery
const GALLERY_MAX = 200;
const TRANSITION_MS = 600;
const viridis = colorTable().lut;

/** @param {{ model: import("@anywidget/types").AnyModel<ProjectorState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "nbviz nbviz-projector" });
  el.appendChild(root);
  const title = h("div", { class: "nbviz-title nbviz-projector__title" });
  const status = h("div", { class: "nbviz-status nbviz-projector__status", role: "status" });
  const colorSelect = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-projector__color", "aria-label": "colour points by" })
  );
  const search = /** @type {HTMLInputElement} */ (
    h("input", {
      class: "nbviz-control nbviz-projector__search",
      type: "search",
      placeholder: "class name",
      "aria-label": "search by class name",
    })
  );
  const slider = /** @type {HTMLInputElement} */ (
    h("input", { class: "nbviz-projector__epoch", type: "range", min: "0", max: "0", step: "1", "aria-label": "epoch" })
  );
  const epochLabel = h("span", { class: "nbviz-projector__epoch-label" });
  const lassoToggle = /** @type {HTMLInputElement} */ (
    h("input", { type: "checkbox", class: "nbviz-projector__lasso", "aria-label": "lasso selection" })
  );
  const controls = h("div", { class: "nbviz-controls nbviz-projector__controls" }, [
    h("label", {}, ["colour ", colorSelect]),
    h("label", {}, ["find ", search]),
    h("label", {}, ["epoch ", slider]),
    epochLabel,
    h("label", {}, [lassoToggle, "lasso"]),
  ]);
  const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-projector__canvas", role: "img" }));
  const tooltip = h("div", { class: "nbviz-projector__tooltip", role: "tooltip", hidden: "" });
  const legend = h("div", { class: "nbviz-projector__legend" });
  const stage = h("div", { class: "nbviz-projector__stage" }, [canvas, tooltip]);
  stage.style.height = `${HEIGHT}px`;
  const hint = h(
    "div",
    { class: "nbviz-projector__hint" },
    "drag to pan, wheel to zoom, click a point for its neighbours; with lasso on, drag around points for their gallery",
  );
  const panelLabel = h("span", {});
  const closePanel = h("button", { class: "nbviz-close", type: "button", "aria-label": "close" }, "×");
  const panelItems = h("div", { class: "nbviz-projector__thumbs" });
  const panel = h("div", { class: "nbviz-projector__panel", hidden: "" }, [
    h("div", { class: "nbviz-projector__panel-head" }, [panelLabel, closePanel]),
    panelItems,
  ]);
  root.append(title, status, controls, stage, legend, hint, panel);

  const scatterplot = createScatterplot({
    canvas,
    width: "auto",
    height: "auto",
    pointSize: 5,
    pointSizeSelected: 2,
    pointOutlineWidth: 2,
    opacityInactiveScale: 0.35,
    lassoInitiator: false,
    showReticle: false,
    // Hover and selection events at once, not after the next redraw (by default they wait
    // on a setTimeout behind it: 150 ms at 100,000 points drawn in software).
    syncEvents: true,
  });
  /** @type {(i: number) => [number, number] | undefined} for the browser tests */
  /** @type {any} */ (stage).nbvizScreen = (i) => scatterplot.getScreenPosition(i);

  const view = {
    frame: 0,
    /** @type {number | null} the frame drawn last (null: none yet) */
    drawn: null,
    /** @type {number[]} */
    shown: [],
    /** @type {number | null} item whose neighbours are shown */
    focus: null,
  };
  let data = decodeAll();

  function decodeAll() {
    const coords = decodeArray(model.get("coords"));
    const near = decodeArray(model.get("neighbours"));
    const n = coords ? coords.shape[1] : 0;
    return {
      n,
      frames: coords ? coords.shape[0] : 0,
      coords,
      box: coords ? bounds(coords.data) : null,
      labels: decodeArray(model.get("labels"))?.data ?? null,
      predicted: decodeArray(model.get("predicted"))?.data ?? null,
      confidence: decodeArray(model.get("confidence"))?.data ?? null,
      loss: decodeArray(model.get("loss"))?.data ?? null,
      near,
      thumbs: decodeArray(model.get("thumbnails")),
      classes: model.get("classes"),
    };
  }

  function fillColorModes() {
    const keep = colorSelect.value;
    colorSelect.replaceChildren();
    for (const [value, label] of COLOR_MODES) {
      if (colorValues(value, data, data.n, 0)) colorSelect.appendChild(h("option", { value }, label));
    }
    if ([...colorSelect.options].some((o) => o.value === keep)) colorSelect.value = keep;
    colorSelect.disabled = colorSelect.options.length === 0;
  }

  /** A CSS colour as #rrggbb (the canvas parses any CSS colour). */
  function hex(/** @type {string} */ color) {
    const c = document.createElement("canvas").getContext("2d");
    if (!c) return "#ffffff";
    c.fillStyle = color;
    return c.fillStyle;
  }

  function applyTheme() {
    const t = themeColors(root);
    scatterplot.set({
      backgroundColor: hex(t.background),
      lassoColor: hex(t.accent),
      pointColorActive: hex(t.foreground),
      pointColorHover: hex(t.foreground),
    });
  }

  /** Draws the frame `view.frame` with the chosen colouring; animates between frames. */
  async function drawNow() {
    if (!data.coords || !data.box) return;
    const aspect = stage.clientWidth > 0 ? stage.clientWidth / HEIGHT : 1;
    const { x, y, shown } = frameXY(data.coords.data, data.n, view.frame, data.box, aspect);
    const mode = colorSelect.value;
    const colors = colorValues(mode, data, data.n, view.frame);
    const k = data.classes;
    const transition = view.drawn !== null && view.drawn !== view.frame;
    view.shown = shown;
    view.drawn = view.frame;
    root.dataset.frame = String(view.frame);
    root.dataset.color = mode;
    root.dataset.drawing = "1";
    await scatterplot.draw(colors ? { x, y, z: colors.values } : { x, y }, {
      transition,
      transitionDuration: TRANSITION_MS,
      zDataType: colors?.type ?? "categorical",
      preventFilterReset: false,
    });
    if (colors?.type === "continuous") {
      const lut = [];
      for (let i = 0; i < 256; i += 4) lut.push(css([viridis[3 * i], viridis[3 * i + 1], viridis[3 * i + 2]]));
      await scatterplot.set({ colorBy: "valueA", pointColor: lut });
    } else if (colors) {
      const count = mode === "correct" ? 2 : Math.max(1, k.length);
      const pal = mode === "correct" ? ["#d62728", "#2ca02c"] : palette(count);
      await scatterplot.set({ colorBy: "valueA", pointColor: pal });
    } else {
      await scatterplot.set({ colorBy: null, pointColor: hex(themeColors(root).accent) });
    }
    if (shown.length < data.n) await scatterplot.filter(shown, { preventEvent: true });
    drawLegend(mode, colors);
    root.dataset.drawing = "0";
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
    if (view.focus !== null) showNeighbours(view.focus);
  }

  // Draws never overlap: requests made during one make exactly one more after it.
  const draw = coalesceAsync(drawNow);

  function drawLegend(/** @type {string} */ mode, /** @type {any} */ colors) {
    legend.replaceChildren();
    if (!colors) return;
    /** @param {string} color @param {string} text */
    const item = (color, text) => {
      const sw = h("span", { class: "nbviz-projector__swatch" });
      sw.style.background = color;
      return h("span", { class: "nbviz-projector__legend-item" }, [sw, text]);
    };
    if (mode === "correct") legend.append(item("#2ca02c", "correct"), item("#d62728", "wrong"));
    else if (colors.type === "categorical") {
      const pal = palette(data.classes.length);
      for (const [i, c] of data.classes.slice(0, 30).entries()) legend.append(item(pal[i], c));
      if (data.classes.length > 30) legend.append(`… ${data.classes.length - 30} more`);
    } else {
      const bar = h("span", { class: "nbviz-projector__ramp" });
      legend.append(
        mode === "loss" ? `loss 0 ` : "confidence 0 ",
        bar,
        mode === "loss" ? ` ${colors.max.toPrecision(3)}` : " 1",
      );
    }
  }

  // --- thumbnails --------------------------------------------------------------------------
  /** @param {number} i */
  function thumb(i) {
    const c = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-projector__thumb" }));
    const t = data.thumbs;
    if (!t) return c;
    const [, th, tw] = t.shape;
    c.width = tw;
    c.height = th;
    c.style.width = `${THUMB}px`;
    c.style.height = `${Math.round((THUMB * th) / tw)}px`;
    const ctx = c.getContext("2d");
    if (!ctx) return c;
    const img = ctx.createImageData(tw, th);
    const src = t.data;
    const base = i * th * tw * 3;
    for (let p = 0; p < th * tw; p++) {
      img.data[4 * p] = src[base + 3 * p];
      img.data[4 * p + 1] = src[base + 3 * p + 1];
      img.data[4 * p + 2] = src[base + 3 * p + 2];
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  /** Text lines about item i in the frame shown. */
  function describe(/** @type {number} */ i) {
    const lines = [`item ${i}`];
    const name = (/** @type {number} */ c) => (c >= 0 && c < data.classes.length ? data.classes[c] : String(c));
    const at = view.frame * data.n + i;
    if (data.labels) lines.push(`true: ${name(data.labels[i])}`);
    if (data.predicted && data.predicted[at] >= 0) lines.push(`predicted: ${name(data.predicted[at])}`);
    if (data.confidence && Number.isFinite(data.confidence[at]))
      lines.push(`confidence: ${(100 * data.confidence[at]).toFixed(1)}%`);
    if (data.loss && Number.isFinite(data.loss[at])) lines.push(`loss: ${data.loss[at].toPrecision(3)}`);
    return lines.join("\n");
  }

  // --- hover -------------------------------------------------------------------------------
  scatterplot.subscribe("pointOver", (i) => {
    const pos = scatterplot.getScreenPosition(i);
    if (!pos) return;
    const text = h("div", { class: "nbviz-projector__tooltip-text" });
    text.textContent = describe(i);
    tooltip.replaceChildren(thumb(i), text);
    tooltip.hidden = false;
    const w = stage.clientWidth;
    tooltip.style.left = `${Math.min(pos[0] + 12, Math.max(0, w - 200))}px`;
    tooltip.style.top = `${Math.min(pos[1] + 12, HEIGHT - 110)}px`;
    root.dataset.hovered = String(i);
  });
  scatterplot.subscribe("pointOut", () => {
    tooltip.hidden = true;
    delete root.dataset.hovered;
  });

  // --- click: neighbours; lasso: gallery ---------------------------------------------------
  scatterplot.subscribe("select", ({ points }) => {
    if (points.length === 1) {
      view.focus = points[0];
      showNeighbours(points[0]);
    } else {
      view.focus = null;
      showGallery(points);
    }
  });
  lassoToggle.addEventListener("change", () => {
    scatterplot.set({ mouseMode: lassoToggle.checked ? "lasso" : "panZoom" });
  });
  scatterplot.subscribe("deselect", () => {
    view.focus = null;
    hidePanel();
  });

  function showNeighbours(/** @type {number} */ i) {
    if (!data.near) return;
    const k = data.near.shape[2];
    const near = neighboursOf(data.near.data, data.n, k, view.frame, i);
    scatterplot.select([i, ...near], { preventEvent: true });
    panelLabel.textContent = `${plural(near.length, "nearest item")} of item ${i} in ${model.get("layer")} (its own space, not the projection)`;
    panelItems.replaceChildren(...[i, ...near].map((j, r) => figure(j, r === 0)));
    panel.hidden = false;
    root.dataset.focus = String(i);
    root.dataset.neighbours = near.join(",");
  }

  function showGallery(/** @type {number[]} */ points) {
    panelLabel.textContent =
      points.length > GALLERY_MAX
        ? `${plural(points.length, "item")} selected (the first ${GALLERY_MAX} shown)`
        : `${plural(points.length, "item")} selected`;
    panelItems.replaceChildren(...points.slice(0, GALLERY_MAX).map((j) => figure(j, false)));
    panel.hidden = false;
    delete root.dataset.focus;
    root.dataset.selected = String(points.length);
  }

  function figure(/** @type {number} */ i, /** @type {boolean} */ self) {
    const cap = h("figcaption", {});
    cap.textContent = describe(i).split("\n").slice(1, 3).join("\n");
    const f = h("figure", { class: `nbviz-projector__item${self ? " nbviz-projector__item--self" : ""}` }, [
      thumb(i),
      cap,
    ]);
    f.title = describe(i);
    return f;
  }

  function hidePanel() {
    panel.hidden = true;
    delete root.dataset.focus;
    delete root.dataset.neighbours;
    delete root.dataset.selected;
  }
  closePanel.addEventListener("click", () => {
    view.focus = null;
    scatterplot.deselect({ preventEvent: true });
    hidePanel();
  });

  // --- controls ----------------------------------------------------------------------------
  colorSelect.addEventListener("change", () => draw());
  slider.addEventListener("input", () => {
    view.frame = Number(slider.value);
    showFrameLabel();
    draw();
  });
  search.addEventListener("input", () => {
    const classes = matchClasses(data.classes, search.value);
    if (!search.value.trim()) {
      scatterplot.deselect({ preventEvent: true });
      root.dataset.found = "";
      return;
    }
    const items = itemsOfClasses(classes, data.labels, data.predicted, data.n, view.frame, view.shown);
    view.focus = null;
    hidePanel();
    if (items.length) scatterplot.select(items, { preventEvent: true });
    else scatterplot.deselect({ preventEvent: true });
    root.dataset.found = String(items.length);
    search.title = classes.length
      ? `${plural(items.length, "item")} of ${classes.map((c) => data.classes[c]).join(", ")}`
      : "no class matches";
  });

  function showFrameLabel() {
    const labels = model.get("frame_labels");
    const ex = model.get("explained")[view.frame] ?? [];
    epochLabel.textContent = `${labels[view.frame] ?? ""} (${view.frame + 1}/${data.frames}); PCs ${ex
      .map((/** @type {number} */ v) => `${(100 * v).toFixed(0)}%`)
      .join(" + ")}`;
  }

  // --- model -> view -----------------------------------------------------------------------
  function onData() {
    const atEnd = view.frame >= data.frames - 1;
    data = decodeAll();
    fillColorModes();
    slider.max = String(Math.max(0, data.frames - 1));
    slider.disabled = data.frames < 2;
    if (atEnd) view.frame = Math.max(0, data.frames - 1); // follow the newest frame
    slider.value = String(view.frame);
    showFrameLabel();
    status.textContent = model.get("status");
    draw();
  }
  title.textContent = model.get("title");
  title.hidden = !model.get("title");
  const onTitle = () => {
    title.textContent = model.get("title");
    title.hidden = !model.get("title");
  };
  model.on("change:title", onTitle);
  const refresh = coalesce(onData);
  model.on("change:coords", refresh);
  model.on("change:status", refresh);
  applyTheme();
  const stopTheme = watchTheme(() => {
    applyTheme();
    draw();
  });
  onData();

  return () => {
    model.off("change:title", onTitle);
    model.off("change:coords", refresh);
    model.off("change:status", refresh);
    stopTheme();
    scatterplot.destroy();
  };
}

export default { render };
