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
import { cellsOf, itemsInCell, joinLink } from "./lib/link.js";
import { createProjections, describeJob, fullCoords, METHODS, sameItems } from "./lib/projection-jobs.js";
import projectionWorker from "./lib/projection-worker.js?worker";
import {
  bounds,
  COLOR_MODES,
  colorValues,
  frameXY,
  frameXY3,
  itemsOfClasses,
  matchClasses,
  neighboursOf,
  palette,
  rotation,
  sphere,
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
 * @property {WireArray | null} coords3      (F, N, 3) float32, the first three PCA axes, NaN: left out
 * @property {WireArray | null} predicted    (F, N) int32, -1: left out
 * @property {WireArray | null} confidence   (F, N) float32 softmax of the prediction
 * @property {WireArray | null} loss         (F, N) float32 cross-entropy of the true class
 * @property {WireArray | null} neighbours   (F, N, k) int32 item numbers, -1: none
 * @property {WireArray | null} sample       (S,) int32 items UMAP and t-SNE see, in a fixed random order
 * @property {WireArray | null} sample_vectors (F, S, d) float32 their PCA to d <= 50 dims, NaN: left out
 * @property {string} link_channel       shared with a linked confusion matrix (lib/link.js), "" when none
 */

const HEIGHT = 440; // px
const THUMB = 56; // px: thumbnails in the tooltip, neighbour strip and gallery
const GALLERY_MAX = 200;
const TRANSITION_MS = 600;
// 3-D: a point's opacity from the far side of the cloud to the near side (depth cueing)
const DEPTH_OPACITY = [0.4, 0.52, 0.64, 0.76, 0.88, 1];
const TURN_PER_PX = 0.01; // radians the cloud turns per pixel dragged
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
  const threeDToggle = /** @type {HTMLInputElement} */ (
    h("input", { type: "checkbox", class: "nbviz-projector__3d", "aria-label": "three dimensions" })
  );
  const projectionSelect = /** @type {HTMLSelectElement} */ (
    h(
      "select",
      { class: "nbviz-control nbviz-projector__projection", "aria-label": "projection" },
      METHODS.map(([value, label]) => h("option", { value }, label)),
    )
  );
  const controls = h("div", { class: "nbviz-controls nbviz-projector__controls" }, [
    h("label", {}, ["projection ", projectionSelect]),
    h("label", {}, ["colour ", colorSelect]),
    h("label", {}, ["find ", search]),
    h("label", {}, ["epoch ", slider]),
    epochLabel,
    h("label", {}, [threeDToggle, "3-D"]),
    h("label", {}, [lassoToggle, "lasso"]),
  ]);
  const progressText = h("span", { class: "nbviz-projector__progress-text" });
  const progressFill = h("div", { class: "nbviz-projector__progress-fill" });
  const progress = h("div", { class: "nbviz-projector__progress", hidden: "" }, [
    progressText,
    h("div", { class: "nbviz-projector__progress-bar", role: "progressbar" }, progressFill),
  ]);
  const canvas = /** @type {HTMLCanvasElement} */ (h("canvas", { class: "nbviz-projector__canvas", role: "img" }));
  const tooltip = h("div", { class: "nbviz-projector__tooltip", role: "tooltip", hidden: "" });
  const legend = h("div", { class: "nbviz-projector__legend" });
  const stage = h("div", { class: "nbviz-projector__stage" }, [canvas, tooltip]);
  stage.style.height = `${HEIGHT}px`;
  const HINTS = {
    2: "drag to pan, wheel to zoom, click a point for its neighbours; with lasso on, drag around points for their gallery",
    3: "drag to turn the cloud, wheel to zoom, click a point for its neighbours; with lasso on, drag around points for their gallery",
  };
  const hint = h("div", { class: "nbviz-projector__hint" }, HINTS[2]);
  const panelLabel = h("span", {});
  const closePanel = h("button", { class: "nbviz-close", type: "button", "aria-label": "close" }, "×");
  const panelItems = h("div", { class: "nbviz-projector__thumbs" });
  const panel = h("div", { class: "nbviz-projector__panel", hidden: "" }, [
    h("div", { class: "nbviz-projector__panel-head" }, [panelLabel, closePanel]),
    panelItems,
  ]);
  root.append(title, status, controls, progress, stage, legend, hint, panel);

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
    /** @type {[number, number] | null} the linked matrix's selected cell [true, predicted] */
    cell: null,
    /** @type {string | null} the projection drawn last */
    drawnMethod: null,
    /** @type {{method: string, frame: number, dims: number, coords: ArrayLike<number>, base: number, from: ArrayLike<number>} | null}
     * what is drawn: (N, dims) positions from `base`, NaN for items not drawn; `from`: the array they came from */
    layout: null,
    /** @type {string | null} the colouring set on the scatterplot */
    colorKey: null,
    /** @type {{of: ArrayLike<number>, sphere: ReturnType<typeof sphere>} | null} a 3-D layout's framing */
    ball: null,
    /** @type {2 | 3} 2: the projection as it is; 3: in 3-D, turned by yaw and pitch */
    dims: /** @type {2 | 3} */ (2),
    /** @type {number | null} */
    drawnDims: null,
    yaw: 0.6,
    pitch: 0.35,
    zoom3: 1,
  };
  let data = decodeAll();

  function decodeAll() {
    const coords = decodeArray(model.get("coords"));
    const near = decodeArray(model.get("neighbours"));
    const coords3 = decodeArray(model.get("coords3"));
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
      sample: decodeArray(model.get("sample"))?.data ?? null,
      sampleVectors: decodeArray(model.get("sample_vectors")),
      coords3,
      ball: coords3 ? sphere(coords3.data) : null,
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
  /** @type {CanvasRenderingContext2D | null} */
  let colorParser = null; // one per view: hex() runs on every draw
  /** A CSS colour as "#rrggbb" (what the scatterplot takes), read by the canvas. */
  function hex(/** @type {string} */ color) {
    colorParser ??= document.createElement("canvas").getContext("2d");
    if (!colorParser) return "#ffffff";
    colorParser.fillStyle = "#ffffff"; // an invalid colour leaves the last one: reset first
    colorParser.fillStyle = color;
    return colorParser.fillStyle;
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
    // UMAP and t-SNE: the layout of the sampled items (running or done); PCA: the kernel's
    const asked = projectionSelect.value;
    const job = projections.view(asked, view.frame, projectionData(), view.dims);
    const laid = job !== null && job.state !== "error" ? job : null;
    const method = laid ? asked : "pca";
    const laidDims = laid?.dims ?? 2;
    const src = laid ? fullCoords(data.n, laid.items, laid.coords, laidDims) : data.coords.data;
    const base = laid ? 0 : view.frame * data.n * 2;
    const box = laid && laidDims === 2 ? projections.box(method, laid.coords) : data.box;
    // 3-D (the PCA's first three axes, or a 3-D UMAP / t-SNE): the cloud turned by the
    // view's angles, seen straight on; nearer points drawn more opaque
    const rot = rotation(view.yaw, view.pitch);
    const zoom = 0.9 * view.zoom3;
    let turned = null;
    if (view.dims === 3 && laid && laidDims === 3) {
      // the framing sphere once per layout, not once per turn of a drag
      if (view.ball?.of !== laid.coords) view.ball = { of: laid.coords, sphere: sphere(src) };
      turned = frameXY3(src, data.n, 0, view.ball.sphere, rot, aspect, zoom);
    } else if (view.dims === 3 && !laid && data.coords3 && data.ball) {
      turned = frameXY3(data.coords3.data, data.n, view.frame, data.ball, rot, aspect, zoom);
    }
    const { x, y, shown } = turned ?? frameXY(src, data.n, laid ? 0 : view.frame, box, aspect);
    const dims = turned ? 3 : 2;
    const mode = colorSelect.value;
    const colors = colorValues(mode, data, data.n, view.frame);
    const k = data.classes;
    // Animate to another frame or projection; not to a running layout's start (the
    // picture shown already) nor between its steps (each draw is the next step).
    const transition =
      view.drawn !== null &&
      (view.drawn !== view.frame || view.drawnMethod !== method || view.drawnDims !== dims) &&
      job?.state !== "running";
    // points that move leave the tooltip behind: hide it until the pointer moves again
    const positions = laid ? laid.coords : data.coords.data;
    if (view.drawn !== view.frame || view.layout?.from !== positions) {
      tooltip.hidden = true;
      delete root.dataset.hovered;
    }
    view.shown = shown;
    view.drawn = view.frame;
    view.drawnMethod = method;
    view.drawnDims = dims;
    if (turned && laid) view.layout = { method, frame: view.frame, dims, coords: src, base: 0, from: positions };
    else if (turned) {
      const coords3 = data.coords3?.data ?? src;
      view.layout = {
        method,
        frame: view.frame,
        dims,
        coords: coords3,
        base: view.frame * data.n * 3,
        from: positions,
      };
    } else view.layout = { method, frame: view.frame, dims, coords: src, base, from: positions };
    root.dataset.frame = String(view.frame);
    root.dataset.color = mode;
    root.dataset.drawing = "1";
    /** @type {{x: Float32Array, y: Float32Array, z?: Float32Array, w?: Float32Array}} */
    const points = { x, y };
    if (colors) points.z = colors.values;
    if (turned) points.w = turned.depth;
    // Each set() renders again (100,000 points in software WebGL: 100-150 ms): only on a
    // change, and before the first draw (when there is nothing yet to render) rather than
    // after it.
    const accent = hex(themeColors(root).accent);
    const colorKey = `${colors?.type}|${mode}|${k.length}|${accent}|${dims}`;
    /** @type {Record<string, any> | null} */
    let look = null;
    if (colorKey !== view.colorKey) {
      look = turned ? { opacityBy: "valueB", opacity: DEPTH_OPACITY } : { opacityBy: null, opacity: 1 };
      if (colors?.type === "continuous") {
        const lut = [];
        for (let i = 0; i < 256; i += 4) lut.push(css([viridis[3 * i], viridis[3 * i + 1], viridis[3 * i + 2]]));
        Object.assign(look, { colorBy: "valueA", pointColor: lut });
      } else if (colors) {
        const count = mode === "correct" ? 2 : Math.max(1, k.length);
        const pal = mode === "correct" ? ["#d62728", "#2ca02c"] : palette(count);
        Object.assign(look, { colorBy: "valueA", pointColor: pal });
      } else {
        Object.assign(look, { colorBy: null, pointColor: accent });
      }
    }
    const firstDraw = view.colorKey === null;
    view.colorKey = colorKey;
    if (look && firstDraw) await scatterplot.set(look);
    await scatterplot.draw(points, {
      transition,
      transitionDuration: TRANSITION_MS,
      zDataType: colors?.type ?? "categorical",
      wDataType: "continuous",
      preventFilterReset: false,
    });
    if (look && !firstDraw) await scatterplot.set(look);
    if (shown.length < data.n) await scatterplot.filter(shown, { preventEvent: true });
    drawLegend(mode, colors);
    showProjection(job);
    root.dataset.projection = method;
    root.dataset.projectionState = job?.state ?? "done";
    root.dataset.drawing = "0";
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
    if (view.focus !== null) showNeighbours(view.focus);
    else if (view.cell) showCell(view.cell); // the linked cell's items in this frame
  }

  // Draws never overlap: requests made during one make exactly one more after it.
  const draw = coalesceAsync(drawNow);

  // --- UMAP and t-SNE: computed in a worker (lib/projection-jobs.js), drawn here --------
  let workerUrl = "";
  const projections = createProjections(
    () => {
      workerUrl ||= URL.createObjectURL(new Blob([projectionWorker], { type: "text/javascript" }));
      return new Worker(workerUrl);
    },
    (redraw) =>
      redraw
        ? draw()
        : showProjection(projections.view(projectionSelect.value, view.frame, projectionData(), view.dims)),
  );
  function projectionData() {
    return {
      n: data.n,
      frames: data.frames,
      sample: data.sample,
      vectors: data.sampleVectors,
      coords: data.coords?.data ?? null,
      coords3: data.coords3?.data ?? null,
    };
  }
  /** The progress line and bar of a UMAP or t-SNE (hidden for the PCA). */
  function showProjection(/** @type {import("./lib/projection-jobs.js").JobView | null} */ job) {
    progress.hidden = job === null;
    if (!job) {
      root.dataset.projectionProgress = "";
      return;
    }
    progressText.textContent = describeJob(job, data.n);
    const share = job.state === "done" ? 1 : job.total > 0 ? job.done / job.total : 0;
    progressFill.style.width = `${(100 * share).toFixed(1)}%`;
    progress.dataset.state = job.state;
    root.dataset.projectionProgress = `${job.done}/${job.total}`;
  }
  // The layout drawn, for the tests and benchmarks: {method, frame, items, coords (flat)}.
  /** @type {any} */ (stage).nbvizLayout = () => {
    const l = view.layout;
    if (!l) return null;
    const coords = [];
    for (const i of view.shown) for (let d = 0; d < l.dims; d++) coords.push(l.coords[l.base + l.dims * i + d]);
    return { method: l.method, frame: l.frame, dims: l.dims, items: [...view.shown], coords };
  };

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
    panelLabel.textContent = near.length
      ? `${plural(near.length, "nearest item")} of item ${i} in ${model.get("layer")} (its own space, not the projection)`
      : `item ${i}: its nearest items in ${model.get("layer")} are not found yet (the status line above says how far the kernel got)`;
    if (view.shown.length < data.n) {
      const drawn = new Set(view.shown);
      const out = near.filter((j) => !drawn.has(j)).length;
      if (out)
        panelLabel.textContent += `; ${out} of them not drawn (not in this ${view.drawnMethod === "pca" ? "frame" : "sample"})`;
    }
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
  projectionSelect.addEventListener("change", () => {
    syncThreeD();
    showFrameLabel();
    draw();
  });
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
    const where = `${labels[view.frame] ?? ""} (${view.frame + 1}/${data.frames})`;
    const pcs = ex
      .slice(0, view.dims)
      .map((/** @type {number} */ v) => `${(100 * v).toFixed(0)}%`)
      .join(" + ");
    // the variance shares describe the PCA picture only
    epochLabel.textContent = projectionSelect.value === "pca" ? `${where}; PCs ${pcs}` : where;
  }

  /** 3-D: the PCA's first three axes, or a UMAP / t-SNE laid out in 3-D. */
  function syncThreeD() {
    threeDToggle.disabled = !data.coords3;
    if (threeDToggle.disabled && threeDToggle.checked) {
      threeDToggle.checked = false;
      threeDToggle.dispatchEvent(new Event("change"));
    }
  }

  // --- model -> view -----------------------------------------------------------------------
  function onData() {
    const atEnd = view.frame >= data.frames - 1;
    const sample = data.sample;
    data = decodeAll();
    if (!sameItems(sample, data.sample)) projections.reset(); // layouts of another sample
    for (const o of projectionSelect.options) o.disabled = o.value !== "pca" && !data.sampleVectors;
    if (projectionSelect.selectedOptions[0]?.disabled) projectionSelect.value = "pca";
    syncThreeD();
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
  // the data (one message a frame); the status alone only says how a search goes
  const DATA_TRAITS = ["coords", "coords3", "neighbours", "predicted", "confidence", "loss", "sample_vectors"];
  for (const t of DATA_TRAITS) model.on(`change:${t}`, refresh);
  const onStatus = () => {
    status.textContent = model.get("status");
  };
  model.on("change:status", onStatus);
  applyTheme();
  const stopTheme = watchTheme(() => {
    applyTheme();
    draw();
  });
  onData();

  // --- 3-D: a drag turns the cloud, the wheel zooms (the scatterplot's own camera is fixed,
  // its hover, click and lasso work on the points as drawn) ---------------------------------
  threeDToggle.addEventListener("change", () => {
    view.dims = threeDToggle.checked ? 3 : 2;
    scatterplot.set({ cameraIsFixed: view.dims === 3 });
    scatterplot.reset(); // the 2-D pan and zoom do not carry over
    hint.textContent = HINTS[view.dims];
    root.dataset.dims = String(view.dims);
    showFrameLabel();
    draw();
  });
  /** @type {{x: number, y: number, yaw: number, pitch: number} | null} */
  let turning = null;
  /** @param {PointerEvent} ev */
  const onTurnStart = (ev) => {
    if (view.dims !== 3 || lassoToggle.checked || ev.button !== 0) return;
    turning = { x: ev.clientX, y: ev.clientY, yaw: view.yaw, pitch: view.pitch };
  };
  /** @param {PointerEvent} ev */
  const onTurn = (ev) => {
    if (!turning) return;
    view.yaw = turning.yaw + (ev.clientX - turning.x) * TURN_PER_PX;
    view.pitch = Math.max(-1.5, Math.min(1.5, turning.pitch + (ev.clientY - turning.y) * TURN_PER_PX));
    tooltip.hidden = true; // the points move from under it
    delete root.dataset.hovered;
    draw();
  };
  const onTurnEnd = () => {
    turning = null;
  };
  /** @param {WheelEvent} ev */
  const onWheel = (ev) => {
    if (view.dims !== 3) return; // 2-D: the scatterplot zooms
    ev.preventDefault();
    view.zoom3 = Math.max(0.3, Math.min(30, view.zoom3 * Math.exp(-ev.deltaY * 0.0015)));
    draw();
  };
  canvas.addEventListener("pointerdown", onTurnStart);
  window.addEventListener("pointermove", onTurn);
  window.addEventListener("pointerup", onTurnEnd);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  /** @type {any} for the browser tests: the view's angles */
  (stage).nbvizTurn = () => ({ yaw: view.yaw, pitch: view.pitch, zoom: view.zoom3 });

  // --- linking with a confusion matrix (Embeddings.link) ----------------------------------
  /** A cell chosen in the matrix: select this frame's items the model puts there. */
  function showCell(/** @type {[number, number]} */ [r, c]) {
    if (!data.labels || !data.predicted) return;
    const items = itemsInCell(data.labels, data.predicted, data.n, view.frame, r, c, view.shown);
    view.focus = null;
    if (items.length) scatterplot.select(items, { preventEvent: true });
    else scatterplot.deselect({ preventEvent: true });
    const name = (/** @type {number} */ k) => data.classes[k] ?? String(k);
    const where = `true ${name(r)}, predicted ${name(c)}`;
    panelLabel.textContent = items.length
      ? `${plural(items.length, "item")} here in the matrix's cell ${where}${items.length > GALLERY_MAX ? ` (the first ${GALLERY_MAX} shown)` : ""}`
      : `no item here in the matrix's cell ${where}`;
    panelItems.replaceChildren(...items.slice(0, GALLERY_MAX).map((j) => figure(j, false)));
    panel.hidden = false;
    root.dataset.linkedCell = `${r},${c}`;
    root.dataset.selected = String(items.length);
  }
  /** @param {any} message */
  function onLinked(message) {
    if (message?.kind !== "cell") return;
    view.cell = message.cell;
    if (view.cell) showCell(view.cell);
    else {
      delete root.dataset.linkedCell;
      scatterplot.deselect({ preventEvent: true });
      hidePanel();
    }
  }
  /** Points chosen here (a lasso, or a point with its neighbours) -> their cells there. */
  function sendPoints(/** @type {number[] | null} */ points) {
    if (!points || !data.labels || !data.predicted) {
      link.send({ kind: "points", cells: null });
      return;
    }
    let items = points;
    if (points.length === 1 && data.near) {
      items = [points[0], ...neighboursOf(data.near.data, data.n, data.near.shape[2], view.frame, points[0])];
    }
    const cells = cellsOf(items, data.labels, data.predicted, data.n, view.frame, data.classes.length);
    link.send({ kind: "points", cells });
  }
  scatterplot.subscribe("select", ({ points }) => {
    view.cell = null;
    delete root.dataset.linkedCell;
    sendPoints(points);
  });
  scatterplot.subscribe("deselect", () => sendPoints(null));
  closePanel.addEventListener("click", () => sendPoints(null));
  let link = joinLink(model.get("link_channel"), onLinked);
  const onChannel = () => {
    link.close();
    link = joinLink(model.get("link_channel"), onLinked);
  };
  model.on("change:link_channel", onChannel);

  return () => {
    window.removeEventListener("pointermove", onTurn);
    window.removeEventListener("pointerup", onTurnEnd);
    model.off("change:title", onTitle);
    model.off("change:link_channel", onChannel);
    link.close();
    for (const t of DATA_TRAITS) model.off(`change:${t}`, refresh);
    model.off("change:status", onStatus);
    stopTheme();
    projections.cancel(); // ends the worker
    if (workerUrl) URL.revokeObjectURL(workerUrl);
    scatterplot.destroy();
  };
}

export default { render };
