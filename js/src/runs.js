// @ts-check
// Many runs side by side (nbviz/runs/widget.py): the list of a folder's runs, picked
// and filtered by name here, and one chart per scalar with the picked runs' curves
// overlaid in distinct colour-blind-safe colours. Picking, filtering, smoothing and
// hovering happen in the browser; "open" asks the kernel for a run's whole dashboard.
import "./lib/common.css";
import "./runs.css";
import { decodeArray } from "./lib/arrays.js";
import { coalesce, el as h, svgEl as svg } from "./lib/dom.js";
import { logRange, niceTicks, smooth, valueRange } from "./lib/monitor-math.js";
import { assignSlots, matches, nearestPoint, slotStyle } from "./lib/runs-math.js";
import { formatNumber as fmt, plural } from "./lib/text.js";

/**
 * @typedef {import("./lib/arrays.js").WireArray} WireArray
 * @typedef {{name: string, kind: string, steps: number, note: string}} RunRow
 * @typedef {Object} RunsState
 * @property {string} title
 * @property {RunRow[]} runs      every run of the folder, in natural order
 * @property {WireArray} curve_steps   every curve's steps, back to back (decimated by the kernel)
 * @property {WireArray} curve_values  their values
 * @property {[string, string, number, number][]} curve_index
 *   per curve: run, "train:<scalar>" | "val:<scalar>", start, length
 * @property {string[]} scalars   one chart each
 * @property {string[]} picked    runs drawn (the browser picks too)
 * @property {string[]} opened    runs whose whole dashboard the kernel shows below
 */

const W = 340;
const H = 220;
const M = { top: 8, right: 12, bottom: 34, left: 56 };

/** @param {{ model: import("@anywidget/types").AnyModel<RunsState>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const root = h("div", { class: "nbviz nbviz-runs" });
  el.appendChild(root);
  const view = { filter: "", smoothing: 0.6, log: false, hover: "" };
  /** @type {Map<string, number>} */
  let slots = new Map();

  // --- skeleton -------------------------------------------------------------------------------
  const title = h("div", { class: "nbviz-title nbviz-runs__title" });
  const status = h("div", { class: "nbviz-status nbviz-runs__status", role: "status" });
  const filter = /** @type {HTMLInputElement} */ (
    h("input", {
      type: "search",
      class: "nbviz-control nbviz-runs__filter",
      placeholder: "filter runs by name",
      "aria-label": "filter runs by name",
    })
  );
  const pickShown = h("button", { class: "nbviz-control nbviz-runs__pick-shown", type: "button" }, "pick shown");
  const pickNone = h("button", { class: "nbviz-control nbviz-runs__pick-none", type: "button" }, "pick none");
  const smoothing = /** @type {HTMLInputElement} */ (
    h("input", { type: "range", min: "0", max: "0.99", step: "0.01", class: "nbviz-runs__smoothing" })
  );
  smoothing.setAttribute("aria-label", "smoothing");
  const smoothingValue = h("span", { class: "nbviz-runs__value" });
  const logToggle = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "nbviz-runs__log" }));
  const controls = h("div", { class: "nbviz-controls nbviz-runs__controls" }, [
    filter,
    pickShown,
    pickNone,
    h("label", {}, ["smoothing ", smoothing, smoothingValue]),
    h("label", { title: "log10 of every curve whose positive values span over a decade" }, [logToggle, " log scale"]),
  ]);
  const list = h("div", { class: "nbviz-runs__list", role: "list", "aria-label": "runs" });
  const charts = h("div", { class: "nbviz-runs__charts" });
  const readout = h("div", { class: "nbviz-runs__readout", role: "status" });
  root.append(
    title,
    status,
    controls,
    h("div", { class: "nbviz-runs__body" }, [list, h("div", { class: "nbviz-runs__right" }, [charts, readout])]),
  );

  // --- data ------------------------------------------------------------------------------------
  /** @template {keyof RunsState} K @param {K} k @returns {RunsState[K]} */
  const get = (k) => model.get(k);
  /** @param {string[]} names */
  const setPicked = (names) => {
    model.set("picked", names);
    model.save_changes();
  };
  /** @typedef {{steps: Float64Array, values: Float64Array}} Curve */
  /** run -> key -> its points: views of the two arrays, rebuilt when a push brings new ones. */
  let curves = /** @type {Record<string, Record<string, Curve>>} */ ({});
  let curvesFrom = /** @type {unknown} */ (null);
  function allCurves() {
    const wire = get("curve_values");
    if (wire === curvesFrom) return curves;
    curvesFrom = wire;
    const steps = Float64Array.from(decodeArray(get("curve_steps"))?.data ?? []);
    const values = Float64Array.from(decodeArray(wire)?.data ?? []);
    curves = {};
    for (const [run, key, start, length] of get("curve_index") || []) {
      curves[run] ??= {};
      curves[run][key] = {
        steps: steps.subarray(start, start + length),
        values: values.subarray(start, start + length),
      };
    }
    return curves;
  }

  // --- the list of runs ------------------------------------------------------------------------
  /** @type {Map<string, {row: HTMLElement, box: HTMLInputElement, swatch: SVGElement, line: SVGElement, steps: HTMLElement, note: HTMLElement, open: HTMLButtonElement}>} */
  const rows = new Map();
  function rowOf(/** @type {string} */ name) {
    let r = rows.get(name);
    if (r) return r;
    const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", "aria-label": `pick ${name}` }));
    const line = svg("line", { x1: 1, y1: 6, x2: 21, y2: 6, "stroke-width": 3 });
    const swatch = svg("svg", { width: 22, height: 12, class: "nbviz-runs__swatch", "aria-hidden": "true" });
    swatch.append(line);
    const steps = h("span", { class: "nbviz-runs__steps" });
    const note = h("span", { class: "nbviz-runs__note" });
    const open = /** @type {HTMLButtonElement} */ (
      h("button", { class: "nbviz-control nbviz-runs__open", type: "button", title: "show this run's dashboard" })
    );
    const row = h("div", { class: "nbviz-runs__row", role: "listitem" }, [
      h("label", { class: "nbviz-runs__name", title: name }, [box, swatch, h("span", {}, name)]),
      steps,
      open,
      note,
    ]);
    row.dataset.run = name;
    box.addEventListener("change", () => {
      const picked = get("picked").filter((p) => p !== name);
      setPicked(box.checked ? [...picked, name] : picked);
    });
    open.addEventListener("click", () => {
      const opened = get("opened");
      model.set("opened", opened.includes(name) ? opened.filter((o) => o !== name) : [...opened, name]);
      model.save_changes();
    });
    row.addEventListener("mouseenter", () => hover(name));
    row.addEventListener("mouseleave", () => hover(""));
    r = { row, box, swatch, line, steps, note, open };
    rows.set(name, r);
    return r;
  }

  function drawList() {
    const runs = get("runs") || [];
    const picked = new Set(get("picked"));
    const opened = new Set(get("opened"));
    const shown = [];
    for (const run of runs) {
      const r = rowOf(run.name);
      const on = picked.has(run.name);
      r.box.checked = on;
      const slot = slots.get(run.name);
      r.swatch.style.visibility = on && slot !== undefined ? "visible" : "hidden";
      if (slot !== undefined) {
        const { color, dash } = slotStyle(slot);
        r.line.setAttribute("stroke", color);
        r.line.setAttribute("stroke-dasharray", dash);
      }
      r.steps.textContent = plural(run.steps, "step");
      r.note.textContent = run.note;
      r.note.hidden = !run.note;
      r.open.textContent = opened.has(run.name) ? "close" : "open";
      r.open.setAttribute("aria-pressed", String(opened.has(run.name)));
      r.row.hidden = !matches(run.name, view.filter);
      if (!r.row.hidden) shown.push(run.name);
      r.row.classList.toggle("nbviz-runs__row--picked", on);
    }
    const names = new Set(runs.map((r) => r.name));
    for (const [name, r] of rows) {
      if (!names.has(name)) {
        r.row.remove();
        rows.delete(name);
      }
    }
    const order = runs.map((r) => /** @type {any} */ (rows.get(r.name)).row);
    if (order.length !== list.children.length || order.some((row, i) => list.children[i] !== row))
      list.replaceChildren(...order); // only when a run came, went or moved
    const drawn = runs.filter((r) => picked.has(r.name) && !rows.get(r.name)?.row.hidden).length;
    const top = runs.reduce((m, r) => Math.max(m, r.steps), 0);
    status.textContent = runs.length
      ? `${plural(runs.length, "run")}${view.filter ? `, ${shown.length} shown` : ""}, ${drawn} drawn; up to ${plural(top, "step")}`
      : "no runs yet";
    return shown;
  }

  // --- the charts --------------------------------------------------------------------------------
  /** @type {Map<string, {box: HTMLElement, plot: SVGElement, curves: {name: string, xs: Float64Array, ys: Float64Array, values: Float64Array, steps: Float64Array}[], x: (v: number) => number, y: (v: number) => number, log: boolean}>} */
  const chartParts = new Map();

  function drawCharts() {
    const series = allCurves();
    const picked = get("picked").filter((n) => matches(n, view.filter) && series[n]);
    const names = get("scalars") || [];
    charts.replaceChildren();
    chartParts.clear();
    for (const name of names) {
      const train = picked.map((run) => ({ run, s: series[run][`train:${name}`] })).filter((c) => c.s);
      const val = picked.map((run) => ({ run, s: series[run][`val:${name}`] })).filter((c) => c.s);
      const lines = train.map(({ run, s }) => ({
        run,
        steps: s.steps,
        values: smooth(s.values, view.smoothing),
        val: false,
      }));
      const dots = val.map(({ run, s }) => ({ run, ...s, val: true }));
      const all = [...lines, ...dots];
      const log = view.log && logRange(Float64Array.from(all.flatMap((c) => [...c.values]))) !== null;
      const tx = (/** @type {number} */ v) => (log ? (v > 0 ? Math.log10(v) : NaN) : v);
      const ys = all.map((c) => c.values.map(tx));
      let steps = [Infinity, -Infinity];
      for (const c of all)
        if (c.steps.length) steps = [Math.min(steps[0], c.steps[0]), Math.max(steps[1], c.steps[c.steps.length - 1])];
      const range = valueRange(ys);
      const box = h("figure", { class: "nbviz-runs__chart" });
      box.dataset.scalar = name;
      const heading = h("figcaption", {}, log ? `${name} (log10)` : name);
      const plot = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
      plot.setAttribute("aria-label", `${name} of ${plural(picked.length, "picked run")}`);
      box.append(heading, plot);
      charts.append(box);
      if (!range || !(steps[1] >= steps[0])) {
        const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nbviz-runs__empty" });
        t.textContent = picked.length ? "no points yet" : "pick runs on the left";
        plot.append(t);
        continue;
      }
      const [x0, x1] = steps[1] > steps[0] ? steps : [steps[0] - 1, steps[0] + 1];
      const [y0, y1] = range;
      const x = (/** @type {number} */ v) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
      const y = (/** @type {number} */ v) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
      drawAxes(plot, x0, x1, y0, y1, x, y, log);
      /** @type {{name: string, xs: Float64Array, ys: Float64Array, values: Float64Array, steps: Float64Array}[]} */
      const hits = [];
      all.forEach((c, i) => {
        const slot = slots.get(c.run);
        if (slot === undefined) return;
        const { color, dash } = slotStyle(slot);
        const xs = c.steps.map(x);
        const yv = ys[i].map(y);
        if (c.val) {
          // One path of dots per run (not an element per point: 200 runs stay light).
          const dots = svg("path", { d: dotsOf(xs, yv, 3.5), fill: color, class: "nbviz-runs__val" });
          dots.dataset.run = c.run;
          plot.append(dots);
        } else {
          const path = svg("path", {
            d: pathOf(xs, yv),
            fill: "none",
            stroke: color,
            "stroke-width": 1.75,
            "stroke-dasharray": dash,
            class: "nbviz-runs__line",
          });
          path.dataset.run = c.run;
          plot.append(path);
          // Where the curve first turns NaN or infinite: a cross along the top in the run's
          // colour (the line stops there; a blow-up never reads as a plateau).
          const bad = c.values.findIndex((v) => !Number.isFinite(v));
          if (bad >= 0) {
            const mark = svg("path", {
              d: `M${xs[bad] - 4} ${M.top}l8 8m0 -8l-8 8`,
              stroke: color,
              "stroke-width": 2,
              class: "nbviz-runs__bad",
            });
            mark.dataset.run = c.run;
            const tip = svg("title");
            tip.textContent = `${c.run}: non-finite from step ${c.steps[bad].toLocaleString("en-US")}`;
            mark.append(tip);
            plot.append(mark);
          }
        }
        hits.push({ name: c.run, xs, ys: yv, values: c.values, steps: c.steps });
      });
      const rule = svg("line", { y1: M.top, y2: H - M.bottom, class: "nbviz-runs__rule" });
      rule.style.visibility = "hidden";
      plot.append(rule);
      plot.addEventListener("mousemove", (ev) => {
        const r = plot.getBoundingClientRect();
        const px = ((ev.clientX - r.left) / r.width) * W;
        const py = ((ev.clientY - r.top) / r.height) * H;
        const near = nearestPoint(hits, px, py);
        if (!near) return;
        const c = /** @type {any} */ (hits.find((k) => k.name === near.name));
        rule.setAttribute("x1", String(c.xs[near.index]));
        rule.setAttribute("x2", String(c.xs[near.index]));
        rule.style.visibility = "visible";
        readout.textContent = `${near.name}: ${name} ${fmt(c.values[near.index])} at step ${c.steps[near.index].toLocaleString("en-US")}`;
        hover(near.name);
      });
      plot.addEventListener("mouseleave", () => {
        rule.style.visibility = "hidden";
        hover("");
      });
      chartParts.set(name, { box, plot, curves: hits, x, y, log });
    }
    if (!names.length) charts.append(h("div", { class: "nbviz-runs__empty" }, "no scalars recorded yet"));
    hover(view.hover);
  }

  /** Emphasise one run's lines in every chart (the others fade); "" for none. */
  function hover(/** @type {string} */ name) {
    view.hover = name;
    root.classList.toggle("nbviz-runs--hover", !!name);
    for (const node of charts.querySelectorAll("[data-run]")) {
      node.classList.toggle("nbviz-runs--hot", /** @type {HTMLElement} */ (node).dataset.run === name);
    }
    for (const [run, r] of rows) r.row.classList.toggle("nbviz-runs__row--hot", run === name);
    if (!name) readout.textContent = "";
  }

  const redraw = coalesce(() => {
    const picked = get("picked");
    slots = assignSlots(picked, slots);
    title.textContent = get("title") || "";
    title.hidden = !get("title");
    smoothingValue.textContent = view.smoothing.toFixed(2);
    drawList();
    drawCharts();
  });

  // --- controls --------------------------------------------------------------------------------
  smoothing.value = String(view.smoothing);
  filter.addEventListener("input", () => {
    view.filter = filter.value;
    redraw();
  });
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    redraw();
  });
  logToggle.addEventListener("change", () => {
    view.log = logToggle.checked;
    redraw();
  });
  pickShown.addEventListener("click", () => {
    const picked = get("picked");
    const shown = (get("runs") || []).map((r) => r.name).filter((n) => matches(n, view.filter));
    setPicked([...picked, ...shown.filter((n) => !picked.includes(n))]);
  });
  pickNone.addEventListener("click", () => {
    // "none" of what is shown: runs hidden by the filter stay as they are.
    setPicked(get("picked").filter((n) => !matches(n, view.filter)));
  });

  const events = [
    "change:runs",
    "change:curve_index",
    "change:curve_values",
    "change:scalars",
    "change:picked",
    "change:opened",
    "change:title",
  ];
  for (const e of events) model.on(e, redraw);
  redraw();
  return () => {
    for (const e of events) model.off(e, redraw);
  };
}

/** An SVG path of a dot of radius `r` at each finite point. */
function dotsOf(/** @type {Float64Array} */ xs, /** @type {Float64Array} */ ys, /** @type {number} */ r) {
  let d = "";
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(ys[i]) || !Number.isFinite(xs[i])) continue;
    d += `M${(xs[i] - r).toFixed(1)} ${ys[i].toFixed(1)}a${r} ${r} 0 1 0 ${2 * r} 0a${r} ${r} 0 1 0 ${-2 * r} 0`;
  }
  return d;
}

/** An SVG path through the points, broken at non-finite ones (a gap, never a bridge). */
function pathOf(/** @type {Float64Array} */ xs, /** @type {Float64Array} */ ys) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(ys[i]) || !Number.isFinite(xs[i])) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${xs[i].toFixed(1)} ${ys[i].toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * @param {SVGElement} plot
 * @param {number} x0 @param {number} x1 @param {number} y0 @param {number} y1
 * @param {(v: number) => number} x @param {(v: number) => number} y
 * @param {boolean} log
 */
function drawAxes(plot, x0, x1, y0, y1, x, y, log) {
  const g = svg("g", { class: "nbviz-runs__axes" });
  for (const t of niceTicks(y0, y1, { count: 5 })) {
    g.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: "nbviz-runs__grid" }));
    const label = svg("text", { x: M.left - 6, y: y(t) + 4, "text-anchor": "end" });
    label.textContent = log ? `1e${+t.toFixed(2)}` : fmt(t);
    g.append(label);
  }
  for (const t of niceTicks(x0, x1, { count: 4, whole: true })) {
    g.append(svg("line", { x1: x(t), x2: x(t), y1: H - M.bottom, y2: H - M.bottom + 4, class: "nbviz-runs__tick" }));
    const label = svg("text", { x: x(t), y: H - M.bottom + 16, "text-anchor": "middle" });
    label.textContent = t.toLocaleString("en-US");
    g.append(label);
  }
  const xlabel = svg("text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle" });
  xlabel.textContent = "step";
  g.append(
    svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "nbviz-runs__axis" }),
    xlabel,
  );
  plot.append(g);
}

export default { render };
