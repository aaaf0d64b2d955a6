// @ts-check
// The layer graph's details panel: what it says of a module or an op (facts, tensors,
// parameters, a weight histogram, the repr), built as DOM nodes from explicit inputs.
// The facts themselves are graph-view.js's detailFacts (node-tested); text is always
// text: names from the model never become markup.

import { el as h, svgEl as s } from "./dom.js";
import * as gv from "./graph-view.js";

/**
 * The panel's content for node `n`: a heading with a close button (calls `onClose`),
 * then everything the graph knows of it.
 * @param {import("./graph-view.js").GraphIndex} index
 * @param {import("./graph-view.js").GNode} n
 * @param {() => void} onClose
 * @returns {(string | Node)[]}
 */
export function detailsContent(index, n, onClose) {
  const mod = n.kind === "module" ? index.graph.modules?.[n.path] : undefined;
  const close = h(
    "button",
    { class: "nbviz-close nbviz-graph__close", type: "button", "aria-label": "close details" },
    "×",
  );
  close.addEventListener("click", onClose);
  const heading = n.kind === "module" ? n.path || n.name || n.type : n.name;
  /** @type {(string | Node)[]} */
  const parts = [
    h("div", { class: "nbviz-graph__details-head" }, [
      h("div", {}, [h("strong", {}, heading), " ", h("span", { class: "nbviz-graph__muted" }, n.type)]),
      close,
    ]),
  ];
  const facts = gv.detailFacts(index, n);
  parts.push(
    h(
      "dl",
      { class: "nbviz-graph__facts" },
      facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
  );
  /** @param {string} label @param {{shape: number[] | null, dtype: string}[] | undefined} list */
  const tensors = (label, list) => {
    if (!list || !list.length) return;
    parts.push(h("h4", {}, label));
    parts.push(
      h(
        "ul",
        { class: "nbviz-graph__tensors" },
        list.map((t) => h("li", {}, [h("code", {}, t.shape ? `[${t.shape.join(", ")}]` : "–"), ` ${t.dtype ?? ""}`])),
      ),
    );
  };
  tensors("inputs", n.inputs);
  tensors("outputs", n.outputs);
  if (mod) {
    if (mod.params && mod.params.length) {
      parts.push(h("h4", {}, "parameters"));
      const rows = mod.params.map((p) =>
        h("tr", {}, [
          h("td", {}, p.name),
          h("td", {}, h("code", {}, `[${(p.shape || []).join(", ")}]`)),
          h("td", { class: "nbviz-graph__num" }, gv.formatInt(p.numel)),
          h("td", {}, p.dtype ?? ""),
        ]),
      );
      parts.push(
        h("table", { class: "nbviz-graph__params" }, [
          h(
            "thead",
            {},
            h("tr", {}, [
              h("th", {}, "name"),
              h("th", {}, "shape"),
              h("th", { class: "nbviz-graph__num" }, "count"),
              h("th", {}, "dtype"),
            ]),
          ),
          h("tbody", {}, rows),
        ]),
      );
    }
    if (mod.params && mod.params.length) {
      parts.push(h("h4", {}, "weights"));
      parts.push(
        mod.histogram
          ? histogram(mod.histogram)
          : h("div", { class: "nbviz-graph__muted" }, "no values on the meta device"),
      );
    }
    if (mod.repr) {
      parts.push(h("h4", {}, "repr"));
      // One block per line, continuations hanging under it (see graph.css).
      const lines = gv.reprLines(mod.repr).map(({ indent, parts: pieces }) =>
        h(
          "span",
          { class: "nbviz-graph__repr-line", style: `--nbviz-hang: ${indent + 2}ch` },
          pieces.map((p) => (p.keep ? h("span", { class: "nbviz-graph__repr-keep" }, p.text) : p.text || " ")),
        ),
      );
      parts.push(h("pre", { class: "nbviz-graph__repr" }, lines));
    }
  }
  return parts;
}

/** Weight histogram as small SVG bars. @param {{counts: number[], edges: number[]}} hist */
export function histogram(hist) {
  const W = 260;
  const H = 64;
  const counts = hist.counts || [];
  const max = Math.max(1, ...counts);
  const out = s("svg", {
    class: "nbviz-graph__hist",
    width: W,
    height: H + 16,
    viewBox: `0 0 ${W} ${H + 16}`,
    role: "img",
  });
  const bw = W / Math.max(1, counts.length);
  counts.forEach((c, i) => {
    const bh = c > 0 ? Math.max(1, (H * c) / max) : 0;
    const r = s("rect", {
      x: (i * bw + 0.5).toFixed(1),
      y: (H - bh).toFixed(1),
      width: Math.max(0.5, bw - 1).toFixed(1),
      height: bh.toFixed(1),
    });
    r.appendChild(
      s("title", {}, `[${fmt(hist.edges?.[i])}, ${fmt(hist.edges?.[i + 1])}): ${c.toLocaleString("en-US")}`),
    );
    out.appendChild(r);
  });
  out.appendChild(s("line", { x1: 0, x2: W, y1: H + 0.5, y2: H + 0.5 }));
  const edges = hist.edges || [];
  if (edges.length) {
    out.appendChild(s("text", { x: 0, y: H + 13 }, fmt(edges[0])));
    out.appendChild(s("text", { x: W, y: H + 13, "text-anchor": "end" }, fmt(edges[edges.length - 1])));
    if (edges[0] < 0 && edges[edges.length - 1] > 0) {
      const x0 = (W * -edges[0]) / (edges[edges.length - 1] - edges[0]);
      out.appendChild(s("text", { x: x0.toFixed(1), y: H + 13, "text-anchor": "middle" }, "0"));
    }
  }
  out.setAttribute("aria-label", `histogram of weight values from ${fmt(edges[0])} to ${fmt(edges[edges.length - 1])}`);
  return out;
}
/** @param {number | undefined} x */
const fmt = (x) => (x == null ? "?" : gv.formatValue(x));
