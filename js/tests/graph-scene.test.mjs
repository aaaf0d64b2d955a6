import assert from "node:assert/strict";
import { test } from "node:test";
import ELK from "elkjs/lib/elk.bundled.js";
import { colorTable } from "../src/lib/colors.js";
import { boxFill, boxValue, drawScene, legendContent, legendSvg, roundedPath } from "../src/lib/graph-scene.js";
import {
  estimateWidth,
  FOLD_PREFIX,
  indexGraph,
  minimumIsTransposed,
  overlayScale,
  probeGraph,
  readLayout,
  toElk,
  visibleGraph,
} from "../src/lib/graph-view.js";
import "./fake-dom.mjs"; // a document for the element factories
import { repeated, residual } from "./graph-fixtures.mjs";

const elk = new ELK();

/** The scene of a graph with these modules open and these runs folded. */
async function scene(graph, open, folded, { measure = estimateWidth, errorNode = null } = {}) {
  const index = indexGraph(graph);
  const vis = visibleGraph(index, new Set(open), new Set(folded));
  const transposed = minimumIsTransposed(await elk.layout(probeGraph()));
  const laid = readLayout(await elk.layout(toElk(index, vis, { measure, transposed })));
  const drawn = drawScene({ index, vis, laid, measure, markerId: "arrow-1", errorNode });
  return { index, vis, laid, drawn };
}

const cls = (/** @type {any} */ e) => e.getAttribute("class") || "";

test("scene: a box per visible node, placed by the layout, in four layers", async () => {
  const { vis, laid, drawn } = await scene(residual(), ["m0", "m1"], []);
  const [edges, containers, labels, leaves] = drawn.layers;
  // bottom to top: edges under the translucent containers, their labels, then the boxes
  assert.deepEqual(
    drawn.layers.map((l) => cls(/** @type {any} */ (l))),
    ["nbviz-graph__edges", "nbviz-graph__containers", "nbviz-graph__edge-labels", "nbviz-graph__leaves"],
  );
  assert.deepEqual([...drawn.groups.keys()].sort(), vis.nodes.map((v) => v.id).sort());
  for (const v of vis.nodes) {
    const g = /** @type {any} */ (drawn.groups.get(v.id));
    const b = laid.boxes.get(v.id);
    assert.equal(g.dataset.id, v.id);
    assert.equal(g.dataset.kind, v.kind);
    assert.equal(g.getAttribute("transform"), `translate(${b.x.toFixed(1)},${b.y.toFixed(1)})`);
    assert.equal(g.getAttribute("role"), "button");
    assert.equal(g.getAttribute("tabindex"), "-1"); // the view picks the one tab stop
  }
  // open modules are containers (outermost first), everything else a leaf box
  const inContainers = /** @type {any} */ (containers).children.map((/** @type {any} */ g) => g.dataset.id);
  assert.deepEqual(inContainers, ["m0", "m1"]);
  assert.equal(/** @type {any} */ (leaves).children.length, vis.nodes.length - 2);
  assert.equal(/** @type {any} */ (drawn.groups.get("m1")).getAttribute("aria-expanded"), "true");
  // every edge with a path is drawn, with the arrowhead, and says what it joins
  const paths = /** @type {any} */ (edges).children;
  assert.equal(paths.length, vis.edges.length);
  for (const p of paths) {
    assert.equal(p.getAttribute("marker-end"), "url(#arrow-1)");
    assert.match(p.getAttribute("d"), /^M[\d.]+,[\d.]+(L|Q)/);
    assert.ok(vis.byId.has(p.dataset.source) && vis.byId.has(p.dataset.target));
  }
  assert.ok(/** @type {any} */ (labels).children.every((/** @type {any} */ t) => t.textContent.length > 0));
});

test("scene: a folded run is one box with a ×N badge that unfolds; unfolded ones can refold", async () => {
  const folded = await scene(repeated(), ["m0", "m1"], ["b0"]);
  const fold = /** @type {any} */ (folded.drawn.groups.get(`${FOLD_PREFIX}b0`));
  assert.ok(fold.classList.contains("nbviz-graph__node--folded"));
  const badge = fold.findAll((/** @type {any} */ e) => e.getAttribute("data-action") === "unfold");
  assert.equal(badge.length, 1);
  assert.match(badge[0].textContent, /×3/);
  assert.match(fold.getAttribute("aria-label"), /×3 repeats of Block/);
  const open = await scene(repeated(), ["m0", "m1"], []);
  for (const [i, id] of ["b0", "b1", "b2"].entries()) {
    const g = /** @type {any} */ (open.drawn.groups.get(id));
    const refold = g.findAll((/** @type {any} */ e) => e.getAttribute("data-action") === "refold");
    assert.equal(refold.length, 1, id);
    assert.match(refold[0].textContent, new RegExp(`${i + 1}/3`));
  }
});

test("scene: the failing op is marked, long names are shortened and kept whole in the tooltip", async () => {
  const graph = residual();
  graph.nodes.find((n) => n.id === "m1").name = "a_rather_long_module_name_that_cannot_fit";
  graph.nodes.find((n) => n.id === "m1").path = "a_rather_long_module_name_that_cannot_fit";
  const wide = (/** @type {string} */ text, /** @type {any} */ font) => 3 * estimateWidth(text, font);
  const { drawn } = await scene(graph, ["m0"], [], { measure: wide, errorNode: "o2" });
  const m1 = /** @type {any} */ (drawn.groups.get("m1"));
  assert.ok(/** @type {any} */ (drawn.groups.get("o2")).classList.contains("nbviz-graph__node--error"));
  assert.ok(!m1.classList.contains("nbviz-graph__node--error"));
  const name = m1.byClass("nbviz-graph__name")[0].textContent;
  assert.ok(name.endsWith("…") && name.length < 40, name);
  const tip = m1.findAll((/** @type {any} */ e) => e.tagName === "title")[0].textContent;
  assert.match(tip, /a_rather_long_module_name_that_cannot_fit/);
});

test("overlay: a box's value, a folded run's mean of its finite members, and its fill", () => {
  const index = indexGraph(repeated());
  const vis = visibleGraph(index, new Set(["m0", "m1"]), new Set(["b0"]));
  const fold = /** @type {any} */ (vis.byId.get(`${FOLD_PREFIX}b0`));
  const values = { "layers.0": 1, "layers.1": 3, "layers.2": Number.NaN, layers: 7 };
  assert.equal(boxValue(index, fold, values), 2);
  assert.equal(boxValue(index, /** @type {any} */ (vis.byId.get("m1")), values), 7);
  assert.ok(Number.isNaN(boxValue(index, fold, { "layers.2": null })));
  const table = colorTable();
  const scale = overlayScale({ a: 0, b: 10 });
  const low = boxFill(0, scale, table);
  const high = boxFill(10, scale, table);
  assert.ok(low && high && low.fill !== high.fill);
  assert.equal(low.dark, true); // viridis starts dark purple: light text on it
  assert.equal(high.dark, false); // and ends yellow
  assert.equal(boxFill(Number.NaN, scale, table), null);
  assert.equal(boxFill(1, null, table), null);
});

test("legend: label as text, range, log scale said; the exported one carries its gradient", () => {
  const table = colorTable();
  const scale = /** @type {NonNullable<ReturnType<typeof overlayScale>>} */ (overlayScale({ a: 1e-6, b: 1 }));
  const parts = /** @type {any[]} */ (legendContent("<b>norm</b>", scale, table));
  assert.equal(parts[0].textContent, "<b>norm</b>"); // user text stays text
  assert.match(parts[2].textContent, /1\.00e-6.*log scale.*1/);
  const { gradient, legend } = /** @type {any} */ (
    legendSvg("norm", scale, table, { x: 5, y: 9, fg: "#000", gradId: "g1" })
  );
  assert.equal(gradient.getAttribute("id"), "g1");
  assert.equal(gradient.children.length, 11);
  assert.equal(legend.getAttribute("transform"), "translate(5,9)");
  assert.match(legend.textContent, /norm.*\(log\)/);
  assert.ok(legend.findAll((/** @type {any} */ e) => e.getAttribute("fill") === "url(#g1)").length === 1);
});

test("roundedPath: straight runs stay lines, corners become quadratic curves of at most r", () => {
  assert.equal(
    roundedPath(
      [
        [0, 0],
        [0, 10],
      ],
      5,
    ),
    "M0.0,0.0L0.0,10.0",
  );
  const d = roundedPath(
    [
      [0, 0],
      [0, 10],
      [10, 10],
    ],
    5,
  );
  assert.equal(d, "M0.0,0.0L0.0,5.0Q0.0,10.0 5.0,10.0L10.0,10.0");
  // a short leg limits the radius to half of it
  assert.equal(
    roundedPath(
      [
        [0, 0],
        [0, 2],
        [10, 2],
      ],
      5,
    ),
    "M0.0,0.0L0.0,1.0Q0.0,2.0 1.0,2.0L10.0,2.0",
  );
});
