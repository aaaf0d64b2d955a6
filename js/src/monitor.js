// @ts-check
// Training monitor (nbviz/monitor/widget.py). Draws gradient flow, update
// ratios, dead units, histograms over time and feature maps from the data the
// kernel pushed, and writes the bqplot curves' data (smoothing, log scale,
// window) in the browser: every control here works while training runs.
import "./lib/common.css";
import "./monitor.css";
import { interpolateInferno, interpolateViridis } from "d3-scale-chromatic";
import { decodeArray } from "./lib/arrays.js";
import { colorTable } from "./lib/colors.js";
import { coalesce, el as h, svgEl as svg, watchTheme } from "./lib/dom.js";
import {
  extent,
  heatPixels,
  logCurves,
  logRange,
  logScale,
  niceTicks,
  nonFiniteSteps,
  smooth,
  strideNote,
  tickFormat,
  tickStep,
  valueRange,
  windowRange,
} from "./lib/monitor-math.js";
import { formatNumber as fmt, plural, tailPath } from "./lib/text.js";

/**
 * @typedef {import("./lib/arrays.js").WireArray} WireArray
 * @typedef {{rows: WireArray, steps: WireArray, stride: number}} History
 * @typedef {Object} MonitorState
 * @property {string} title
 * @property {string[]} layers        parameterised modules, in forward order
 * @property {string[]} relus         ReLU modules (dead units)
 * @property {number} steps           steps recorded so far
 * @property {Record<string, {steps: WireArray, values: WireArray}>} scalars
 * @property {Record<string, {steps: WireArray, values: WireArray}>} val
 * @property {Record<string, History>} flow  grad_norm, grad_max, ratio, dead
 * @property {Record<string, WireArray>} latest  newest grad_norm, grad_max, ratio, dead
 * @property {number} max_step        the step of latest.grad_max (sampled every few steps), -1: none
 * @property {Record<string, History & {radius: number}>} histograms  "layer|kind"
 * @property {string[]} hist_layers
 * @property {Record<string, WireArray>} features  layer -> (N, C, h, w) uint8
 * @property {number} features_step
 * @property {WireArray | null} probe_images  (N, H, W, 3) uint8
 * @property {{step: number, where: string, layer: string, rank?: number} | null} nonfinite
 *   where the first non-finite value began (rank: which process of a distributed job)
 * @property {Record<string, string>[]} curves  per scalar: IPY_MODEL ids of its bqplot parts
 * @property {boolean} detached
 */

const inferno = colorTable(interpolateInferno).lut;
const viridis = colorTable(interpolateViridis).lut;

/** @param {{ model: import("@anywidget/types").AnyModel<MonitorState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "nbviz nbviz-monitor" });
  el.appendChild(root);
  const view = { smoothing: 0.6, log: false, window: 0, hist: "", kind: "weights", featureLayer: "", probe: 0 };

  // --- skeleton -------------------------------------------------------------------------------
  const title = h("div", { class: "nbviz-title nbviz-monitor__title" });
  const status = h("div", { class: "nbviz-status nbviz-monitor__status", role: "status" });
  const banner = h("div", { class: "nbviz-monitor__nan", role: "alert" });
  banner.hidden = true;
  const smoothing = /** @type {HTMLInputElement} */ (
    h("input", {
      type: "range",
      min: "0",
      max: "0.99",
      step: "0.01",
      class: "nbviz-monitor__smoothing",
      "aria-label": "smoothing",
    })
  );
  const smoothingLabel = h("span", { class: "nbviz-monitor__value" });
  const logToggle = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "nbviz-monitor__log" }));
  const windowSelect = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-monitor__window", "aria-label": "steps shown" })
  );
  for (const [v, label] of [
    ["0", "whole run"],
    ["100", "last 100 steps"],
    ["500", "last 500 steps"],
    ["2000", "last 2,000 steps"],
  ])
    windowSelect.append(h("option", { value: v }, label));
  const logLabel = h("span", {}, " log scale");
  const curveControls = h("div", { class: "nbviz-controls nbviz-monitor__controls" }, [
    h("label", {}, ["smoothing ", smoothing, smoothingLabel]),
    h("label", { title: "log10 of the losses (of every curve spanning over a decade when no name says loss)" }, [
      logToggle,
      logLabel,
    ]),
    windowSelect,
  ]);
  const curveNote = h("div", { class: "nbviz-monitor__curve-note", role: "note" });
  curveNote.hidden = true;
  const panel = (
    /** @type {string} */ name,
    /** @type {string} */ heading,
    /** @type {(string | Node)[]} */ extra = [],
  ) => {
    const body = h("div", { class: "nbviz-monitor__body" });
    const note = h("div", { class: "nbviz-monitor__note" });
    const box = h("section", { class: `nbviz-monitor__panel nbviz-monitor__panel--${name}` }, [
      h("div", { class: "nbviz-monitor__head" }, [h("h4", {}, heading), ...extra]),
      body,
      note,
    ]);
    return { box, body, note };
  };
  const flow = panel("flow", "Gradient flow");
  const ratio = panel("ratio", "Update / weight ratio");
  const dead = panel("dead", "Dead ReLU units");
  const histLayer = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-monitor__hist-layer", "aria-label": "histogram layer" })
  );
  const histKind = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-monitor__hist-kind", "aria-label": "histogram of" })
  );
  for (const k of ["weights", "gradients", "activations"]) histKind.append(h("option", { value: k }, k));
  const hist = panel("hist", "Histograms over time", [histLayer, histKind]);
  const featLayer = /** @type {HTMLSelectElement} */ (
    h("select", { class: "nbviz-control nbviz-monitor__feature-layer", "aria-label": "feature map layer" })
  );
  const probeStrip = h("div", { class: "nbviz-monitor__probes", role: "listbox", "aria-label": "probe image" });
  const feat = panel("features", "Feature maps", [featLayer]);
  const grid = h("div", { class: "nbviz-monitor__grid" }, [flow.box, ratio.box, dead.box, hist.box, feat.box]);
  root.append(title, status, banner, curveControls, curveNote, grid);

  // --- data ------------------------------------------------------------------------------------
  /** @template {keyof MonitorState} K @param {K} k @returns {MonitorState[K]} */
  const get = (k) => model.get(k);
  const arr = (/** @type {any} */ v) => decodeArray(v);
  /** @type {Record<string, Record<string, any>>} */
  let curveModels = {};
  let curvesKey = "";

  async function resolveCurves() {
    const list = get("curves") || [];
    const key = JSON.stringify(list);
    if (key === curvesKey) return;
    curvesKey = key;
    /** @type {Record<string, Record<string, any>>} */
    const found = {};
    for (const entry of list) {
      const parts = {};
      for (const [k, id] of Object.entries(entry)) {
        if (k === "name") continue;
        parts[k] = await model.widget_manager.get_model(String(id).replace(/^IPY_MODEL_/, ""));
      }
      found[entry.name] = parts;
    }
    curveModels = found;
    drawCurves();
  }

  /**
   * Write each bqplot figure's data and axes from the raw series: the window, the smoothing
   * and the log scale. Non-finite points are gaps in both lines and crosses along the top of
   * the plot (never smoothed over); the axis ranges and tick formats are set here too, so a
   * short run reads whole steps and a loss axis does not dip below zero.
   */
  function drawCurves() {
    const scalars = get("scalars") || {};
    const val = get("val") || {};
    /** @type {Record<string, Float64Array>} */
    const allValues = {};
    for (const name of Object.keys(curveModels)) {
      const s = scalars[name];
      allValues[name] = Float64Array.from(s ? (arr(s.values)?.data ?? []) : []);
    }
    const logged = new Set(view.log ? logCurves(allValues) : []);
    /** @type {string[]} */
    const notes = [];
    for (const [name, parts] of Object.entries(curveModels)) {
      const s = scalars[name];
      const steps = s ? (arr(s.steps)?.data ?? new Int32Array()) : new Int32Array();
      const [a, b] = windowRange(steps, view.window);
      const x = Float64Array.from(steps.subarray(a, b));
      const raw = allValues[name].subarray(a, b);
      const bad = nonFiniteSteps(x, raw);
      const v = val[name];
      let vx = v ? Float64Array.from(arr(v.steps)?.data ?? []) : new Float64Array();
      let vy = v ? Float64Array.from(arr(v.values)?.data ?? []) : new Float64Array();
      if (view.window > 0 && x.length) {
        const keep = [...vx].map((s) => s >= x[0]);
        vx = vx.filter((_, i) => keep[i]);
        vy = vy.filter((_, i) => keep[i]);
      }
      const badVal = nonFiniteSteps(vx, vy);
      const okVal = [...vy].map(Number.isFinite);
      vx = vx.filter((_, i) => okVal[i]);
      vy = vy.filter((_, i) => okVal[i]);
      const log = logged.has(name);
      // log10 of the values on the same linear axis (swapping in a bqplot LogScale from the
      // browser leaves it without a pixel range). Zero and negative values become gaps.
      const shown = (/** @type {Float64Array} */ y) => (log ? y.map((u) => (u > 0 ? Math.log10(u) : NaN)) : y);
      const yRaw = shown(Float64Array.from(raw));
      const ySmooth = shown(smooth(raw, view.smoothing));
      const yVal = shown(vy);
      const range = valueRange([yRaw, yVal]) || [0, 1];
      const [x0, x1] = extent([x, vx, bad, badVal]) || [0, 1];
      const [lo, hi] = x1 > x0 ? [x0, x1] : [x0 - 1, x0 + 1];
      const step = tickStep(range[0], range[1], 5);
      const format = tickFormat(step, Math.max(Math.abs(range[0]), Math.abs(range[1])));
      parts.x.set({ min: lo, max: hi });
      parts.y.set({ min: range[0], max: range[1] });
      // Explicit tick values (bqplot spaces num_ticks evenly between the ends instead).
      parts.xaxis.set({ num_ticks: null, tick_values: niceTicks(lo, hi, { whole: true }) });
      // The format before the values: bqplot draws the new ticks with the format it has.
      if (parts.yaxis.get("tick_format") !== format) parts.yaxis.set("tick_format", format);
      parts.yaxis.set({ num_ticks: null, tick_values: niceTicks(range[0], range[1]) });
      const title = log ? `log10 ${name}` : name;
      if (parts.figure.get("title") !== title) parts.figure.set("title", title);
      // Trailing gaps are left out: bqplot places a line's label at its last point, and a
      // NaN there becomes an invalid SVG transform.
      const end = lastFinite(yRaw) + 1;
      parts.raw.set({ x: x.subarray(0, end), y: yRaw.subarray(0, end) });
      parts.smooth.set({ x: x.subarray(0, end), y: ySmooth.subarray(0, end) });
      parts.val.set({ x: vx, y: yVal });
      const marks = [...bad, ...badVal];
      parts.bad.set({ x: Float64Array.from(marks), y: new Float64Array(marks.length).fill(range[1]) });
      if (marks.length) {
        const from = /** @type {[number, number]} */ (extent([marks]))[0];
        notes.push(
          `${name}: ${plural(marks.length, "non-finite value")} (NaN or ±Inf) from step ${from}, gaps in its lines, marked + along the top`,
        );
      }
    }
    curveNote.textContent = notes.join("; ");
    curveNote.hidden = notes.length === 0;
    logLabel.textContent = ` log scale${view.log && logged.size ? ` (${[...logged].join(", ")})` : ""}`;
    smoothingLabel.textContent = view.smoothing.toFixed(2);
    root.dataset.curves = String(Object.keys(curveModels).length);
    root.dataset.smoothing = view.smoothing.toFixed(2);
    root.dataset.curveDraws = String(Number(root.dataset.curveDraws || 0) + 1);
  }

  /** @param {Float64Array} y @returns {number} the index of the last finite value, or -1 */
  function lastFinite(y) {
    let i = y.length - 1;
    while (i >= 0 && !Number.isFinite(y[i])) i--;
    return i;
  }

  // --- bars ------------------------------------------------------------------------------------
  /**
   * Vertical bars, one per name, on a log or linear axis, with native tooltips.
   * @param {HTMLElement} into
   * @param {string[]} names
   * @param {ArrayLike<number>} values
   * @param {{log?: boolean, max?: ArrayLike<number> | null, reference?: number, domain?: [number, number]}} opts
   */
  function bars(into, names, values, opts) {
    const W = Math.max(300, Math.min(560, 14 * names.length + 60)),
      H = 150,
      left = 44,
      bottom = 20,
      top = 6;
    const all = [
      ...Array.from(values),
      ...(opts.max ? Array.from(opts.max) : []),
      ...(opts.reference ? [opts.reference] : []),
    ];
    const range = opts.domain || (opts.log ? logRange(all) : [0, Math.max(1e-12, ...all.filter(Number.isFinite))]);
    const s = svg("svg", { width: W, height: H, role: "img" });
    if (!range || !names.length) {
      into.replaceChildren(h("div", { class: "nbviz-monitor__empty" }, "no data yet"));
      return;
    }
    const [lo, hi] = range;
    const u = opts.log ? logScale(lo, hi) : (/** @type {number} */ v) => (v - lo) / (hi - lo || 1);
    const y = (/** @type {number} */ v) => top + (1 - Math.min(1, Math.max(0, u(v) || 0))) * (H - top - bottom);
    const ticks = opts.log ? decades(lo, hi) : [lo, (lo + hi) / 2, hi];
    for (const t of ticks) {
      s.append(svg("line", { x1: left, x2: W - 4, y1: y(t), y2: y(t), class: "nbviz-monitor__gridline" }));
      const lab = svg("text", { x: left - 4, y: y(t) + 3, "text-anchor": "end", class: "nbviz-monitor__axis" });
      lab.textContent = fmt(t);
      s.append(lab);
    }
    if (opts.reference) {
      s.append(
        svg("line", {
          x1: left,
          x2: W - 4,
          y1: y(opts.reference),
          y2: y(opts.reference),
          class: "nbviz-monitor__reference",
        }),
      );
    }
    const bw = (W - left - 4) / names.length;
    names.forEach((name, i) => {
      const v = values[i];
      const g = svg("g");
      const bad = !Number.isFinite(v);
      const x = left + i * bw;
      const rect = svg("rect", {
        x: x + 1,
        y: bad ? top : y(v),
        width: Math.max(1, bw - 2),
        height: bad ? H - top - bottom : Math.max(0, y(lo) - y(v)),
        class: bad ? "nbviz-monitor__bar nbviz-monitor__bar--bad" : "nbviz-monitor__bar",
      });
      const tip = svg("title");
      tip.textContent = `${i + 1}. ${name}: ${fmt(v)}${opts.max ? `, max |g| ${fmt(opts.max[i])}` : ""}`;
      g.append(rect, tip);
      if (opts.max && Number.isFinite(opts.max[i]) && opts.max[i] > 0)
        g.append(
          svg("line", {
            x1: x + 1,
            x2: x + Math.max(2, bw - 1),
            y1: y(opts.max[i]),
            y2: y(opts.max[i]),
            class: "nbviz-monitor__max",
          }),
        );
      s.append(g);
    });
    const first = svg("text", { x: left, y: H - 5, class: "nbviz-monitor__axis" });
    first.textContent = "input side";
    const last = svg("text", { x: W - 4, y: H - 5, "text-anchor": "end", class: "nbviz-monitor__axis" });
    last.textContent = "output side";
    s.append(first, last);
    into.replaceChildren(s);
  }

  function decades(/** @type {number} */ lo, /** @type {number} */ hi) {
    const out = [];
    for (let e = Math.round(Math.log10(lo)); e <= Math.round(Math.log10(hi)); e++) out.push(10 ** e);
    if (out.length > 5) return out.filter((_, i) => i % Math.ceil(out.length / 5) === 0);
    return out;
  }

  /**
   * A heat map canvas (time left to right).
   * @param {HTMLElement} into
   * @param {ArrayLike<number>} rows
   * @param {number} T
   * @param {number} C
   * @param {(v: number) => number} value
   * @param {Uint8Array} lut
   * @param {string} cls
   * @param {boolean} [flip]
   */
  function heat(into, rows, T, C, value, lut, cls, flip = false) {
    const c = /** @type {HTMLCanvasElement} */ (
      h("canvas", {
        class: `nbviz-monitor__heat ${cls}`,
        width: String(Math.max(1, T)),
        height: String(Math.max(1, C)),
        role: "img",
      })
    );
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
    if (T && C)
      ctx.putImageData(
        new ImageData(
          /** @type {Uint8ClampedArray<ArrayBuffer>} */ (heatPixels(rows, T, C, value, lut, { flip })),
          T,
          C,
        ),
        0,
        0,
      );
    into.append(c);
    return c;
  }

  /**
   * A heat map with one row per named layer: the names down the left (every k-th one when
   * rows are too dense to label each), and hovering a cell names its layer, step and value.
   * @param {HTMLElement} into
   * @param {{data: ArrayLike<number>, shape: number[]}} rows  (T, C)
   * @param {ArrayLike<number> | undefined} spans  (T, 2) flat: the first and last step of each column
   * @param {string[]} names  one per row
   * @param {(v: number) => number} value
   * @param {string} cls
   */
  function layerHeat(into, rows, spans, names, value, cls) {
    const [T, C] = rows.shape;
    const every = Math.ceil(C / 12);
    const short = names.map((n) => tailPath(n, 18));
    const labels = h(
      "div",
      { class: "nbviz-monitor__rows", "aria-hidden": "true" },
      names.map((n, i) => h("span", { title: n }, i % every === 0 ? short[i] : "")),
    );
    const wrap = h("div", { class: "nbviz-monitor__heat-wrap" }, [labels]);
    const canvas = heat(wrap, rows.data, T, C, value, inferno, cls);
    canvas.setAttribute("aria-label", `${names.length} layers × ${T} recorded points`);
    canvas.addEventListener("mousemove", (e) => {
      const box = canvas.getBoundingClientRect();
      const t = Math.min(T - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * T)));
      const r = Math.min(C - 1, Math.max(0, Math.floor(((e.clientY - box.top) / box.height) * C)));
      const [a, b] = spans ? [spans[2 * t], spans[2 * t + 1]] : [t, t];
      canvas.title = `${names[r] ?? ""}, ${a === b ? `step ${a}` : `steps ${a}–${b}`}: ${fmt(rows.data[t * C + r])}`;
    });
    into.append(wrap);
  }

  // --- panels ----------------------------------------------------------------------------------
  function drawFlow() {
    const layers = get("layers") || [];
    const latest = get("latest") || {};
    const norm = arr(latest.grad_norm)?.data;
    const mx = arr(latest.grad_max)?.data;
    const f = get("flow") || {};
    flow.body.replaceChildren();
    const barBox = h("div");
    flow.body.append(barBox);
    if (norm) bars(barBox, layers, norm, { log: true, max: mx });
    else
      barBox.append(
        h("div", { class: "nbviz-monitor__empty" }, "no gradients yet: call mon.step() after loss.backward()"),
      );
    const g = f.grad_norm && arr(f.grad_norm.rows);
    if (g && g.shape[0]) {
      const range = logRange(g.data) || [1e-8, 1];
      layerHeat(
        flow.body,
        g,
        arr(f.grad_norm.steps)?.data,
        layers,
        logScale(range[0], range[1]),
        "nbviz-monitor__flow-heat",
      );
      const maxStep = get("max_step");
      const tick = mx && maxStep >= 0 ? ` (tick: max |g| at step ${maxStep}, measured every few steps)` : "";
      flow.note.textContent = `bars: gradient norm per layer at the last step${tick}, log scale; map: layers (input side at the top) × time, colour log10 norm from ${fmt(range[0])} to ${fmt(range[1])}; grey: no gradient or non-finite. ${strideNote(f.grad_norm.stride)}.`;
    } else flow.note.textContent = "";
    root.dataset.flowColumns = String(g ? g.shape[0] : 0);
  }

  function drawRatio() {
    const layers = get("layers") || [];
    const r = arr((get("latest") || {}).ratio)?.data;
    if (r) bars(ratio.body, layers, r, { log: true, reference: 1e-3 });
    else ratio.body.replaceChildren(h("div", { class: "nbviz-monitor__empty" }, "measured every few steps: none yet"));
    const hist = (get("flow") || {}).ratio;
    const rows = hist && arr(hist.rows);
    const range = rows && rows.shape[0] ? logRange(rows.data) : null;
    if (rows && rows.shape[0]) {
      const [lo, hi] = range || [1e-6, 1];
      layerHeat(ratio.body, rows, arr(hist.steps)?.data, layers, logScale(lo, hi), "nbviz-monitor__ratio-heat");
    }
    const colours = range ? `, log colour ${fmt(range[0])} to ${fmt(range[1])}` : "";
    ratio.note.textContent = `|Δw| / |w| of each layer for one optimiser step (bars: the latest; map: layers × time${colours}). The line marks 1e-3, a rule of thumb for SGD (adaptive optimisers such as Adam often run nearer 1e-2).${rows && rows.shape[0] ? ` ${strideNote(hist.stride)}.` : ""}`;
  }

  function drawDead() {
    const relus = get("relus") || [];
    const d = arr((get("latest") || {}).dead)?.data;
    if (!relus.length) {
      dead.body.replaceChildren(h("div", { class: "nbviz-monitor__empty" }, "no nn.ReLU modules in this model"));
      dead.note.textContent = "";
      return;
    }
    if (d) bars(dead.body, relus, d, { domain: [0, 1] });
    else dead.body.replaceChildren(h("div", { class: "nbviz-monitor__empty" }, "measured every few steps: none yet"));
    const hist = (get("flow") || {}).dead;
    const rows = hist && arr(hist.rows);
    if (rows && rows.shape[0])
      layerHeat(dead.body, rows, arr(hist.steps)?.data, relus, (v) => v, "nbviz-monitor__dead-heat");
    dead.note.textContent =
      "fraction of channels that are zero for the whole batch (bars: the latest; map: ReLU modules × time, black 0 to yellow 1). nn.ReLU modules only: functional relu calls are not seen.";
  }

  function drawHist() {
    const layers = get("hist_layers") || [];
    if (histLayer.options.length !== layers.length || [...histLayer.options].some((o, i) => o.value !== layers[i])) {
      histLayer.replaceChildren(...layers.map((l) => h("option", { value: l }, l)));
    }
    if (!layers.includes(view.hist)) view.hist = layers[0] || "";
    histLayer.value = view.hist;
    histKind.value = view.kind;
    const entry = (get("histograms") || {})[`${view.hist}|${view.kind}`];
    hist.body.replaceChildren();
    const rows = entry && arr(entry.rows);
    if (!rows || !rows.shape[0]) {
      hist.body.append(h("div", { class: "nbviz-monitor__empty" }, "recorded every few dozen steps: none yet"));
      hist.note.textContent = "";
      return;
    }
    const [T, B] = rows.shape;
    let peak = 0;
    for (const v of rows.data) if (v > peak) peak = v;
    const wrap = h("div", { class: "nbviz-monitor__hist-wrap" }, [
      h("div", { class: "nbviz-monitor__hist-axis" }, [
        h("span", {}, fmt(entry.radius)),
        h("span", {}, "0"),
        h("span", {}, fmt(-entry.radius)),
      ]),
    ]);
    heat(wrap, rows.data, T, B, (v) => Math.sqrt(v / (peak || 1)), viridis, "nbviz-monitor__hist-heat", true);
    hist.body.append(wrap);
    const steps = arr(entry.steps)?.data;
    hist.note.textContent = `${view.kind} of ${view.hist}: value (vertical, ${B} fixed bins over ±${fmt(entry.radius)}) × time, colour √(share of values); steps ${steps ? steps[0] : 0}–${steps ? steps[steps.length - 1] : 0}. ${strideNote(entry.stride)}.`;
    root.dataset.hist = `${view.hist}|${view.kind}`;
  }

  function drawFeatures() {
    const features = get("features") || {};
    const names = Object.keys(features);
    if (featLayer.options.length !== names.length || [...featLayer.options].some((o, i) => o.value !== names[i])) {
      featLayer.replaceChildren(...names.map((l) => h("option", { value: l }, l)));
    }
    if (!names.includes(view.featureLayer)) view.featureLayer = names[0] || "";
    featLayer.value = view.featureLayer;
    feat.body.replaceChildren();
    const probes = arr(get("probe_images"));
    if (probes && !probeStrip.childElementCount) {
      const [N, H, W] = probes.shape;
      for (let i = 0; i < N; i++) {
        const c = /** @type {HTMLCanvasElement} */ (
          h("canvas", {
            class: "nbviz-monitor__probe",
            width: String(W),
            height: String(H),
            role: "option",
            tabindex: "0",
          })
        );
        const img = new ImageData(W, H);
        for (let p = 0; p < H * W; p++) {
          img.data.set(probes.data.subarray((i * H * W + p) * 3, (i * H * W + p) * 3 + 3), 4 * p);
          img.data[4 * p + 3] = 255;
        }
        /** @type {CanvasRenderingContext2D} */ (c.getContext("2d")).putImageData(img, 0, 0);
        c.addEventListener("click", () => {
          view.probe = i;
          drawFeatures();
        });
        probeStrip.append(c);
      }
    }
    [...probeStrip.children].forEach((c, i) => {
      c.setAttribute("aria-selected", String(i === view.probe));
    });
    const maps = arr(features[view.featureLayer]);
    if (!maps) {
      feat.body.append(
        h("div", { class: "nbviz-monitor__empty" }, "pass probe=... (a few conv-model inputs) to see feature maps"),
      );
      feat.note.textContent = "";
      return;
    }
    const [N, C, Hh, W] = maps.shape;
    const i = Math.min(view.probe, N - 1);
    const tiles = h("div", { class: "nbviz-monitor__tiles" });
    for (let c = 0; c < C; c++) {
      const start = (i * C + c) * Hh * W;
      const tile = /** @type {HTMLCanvasElement} */ (
        h("canvas", { class: "nbviz-monitor__tile", width: String(W), height: String(Hh) })
      );
      const img = new ImageData(W, Hh);
      for (let p = 0; p < Hh * W; p++) {
        const v = maps.data[start + p];
        img.data[4 * p] = img.data[4 * p + 1] = img.data[4 * p + 2] = v;
        img.data[4 * p + 3] = 255;
      }
      /** @type {CanvasRenderingContext2D} */ (tile.getContext("2d")).putImageData(img, 0, 0);
      tile.title = `channel ${c}`;
      tiles.append(tile);
    }
    feat.body.append(probeStrip, tiles);
    feat.note.textContent = `${view.featureLayer}, probe image ${i + 1}: first ${C} channels at ${Hh}×${W}, each scaled to its own range; from step ${get("features_step")}.`;
    root.dataset.featureLayer = view.featureLayer;
  }

  function drawStatus() {
    title.textContent = get("title") || "";
    title.hidden = !title.textContent;
    const n = get("steps");
    status.textContent = `${plural(n, "step")} recorded${get("detached") ? " · detached" : ""}`;
    root.dataset.steps = String(n);
    const bad = get("nonfinite");
    banner.hidden = !bad;
    root.dataset.nonfinite = bad ? "shown" : "";
    if (bad) {
      const onRank = bad.rank == null ? "" : ` on rank ${bad.rank}`;
      banner.textContent =
        bad.where === "scalar"
          ? `Non-finite value (NaN or ±Inf): the scalar “${bad.layer}” at step ${bad.step}${onRank}. Training went on; nbviz.watch(..., on_nan="raise") stops it there.`
          : `Non-finite values (NaN or ±Inf) began in the ${bad.where} of “${bad.layer}” at step ${bad.step}${onRank}. Training went on; nbviz.watch(..., on_nan="raise") stops it there.`;
    }
  }

  function drawAll() {
    drawStatus();
    drawFlow();
    drawRatio();
    drawDead();
    drawHist();
    drawFeatures();
    drawCurves();
    root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
  }

  // --- controls: the view only, never the kernel ------------------------------------------------
  smoothing.value = String(view.smoothing);
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    drawCurves();
  });
  logToggle.addEventListener("change", () => {
    view.log = logToggle.checked;
    drawCurves();
  });
  windowSelect.addEventListener("change", () => {
    view.window = Number(windowSelect.value);
    drawCurves();
  });
  histLayer.addEventListener("change", () => {
    view.hist = histLayer.value;
    drawHist();
  });
  histKind.addEventListener("change", () => {
    view.kind = histKind.value;
    drawHist();
  });
  featLayer.addEventListener("change", () => {
    view.featureLayer = featLayer.value;
    drawFeatures();
  });

  const schedule = coalesce(drawAll); // several traits change in one message: draw once
  const events = [
    "scalars",
    "val",
    "flow",
    "latest",
    "max_step",
    "histograms",
    "features",
    "nonfinite",
    "steps",
    "detached",
  ].map((k) => `change:${k}`);
  for (const e of events) model.on(e, schedule);
  const onCurves = () => resolveCurves();
  model.on("change:curves", onCurves);
  resolveCurves();
  drawAll();
  const unwatch = watchTheme(schedule);
  return () => {
    for (const e of events) model.off(e, schedule);
    model.off("change:curves", onCurves);
    unwatch();
  };
}

export default { render };
