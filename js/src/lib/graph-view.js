// @ts-check
// Pure logic of the layer-graph view (js/src/graph.js): which nodes show for a
// set of expanded modules and folded repeats, edges lifted to the boxes that
// show, search, the ELK graph of what shows, and number formatting. No DOM
// here, so all of it is unit-tested in node (js/tests/graph-view.test.mjs).
// The data contract is nbviz.Graph.to_dict(), written once as the typed dicts
// GraphData, NodeData, EdgeData and ModuleData in nbviz/graph/core.py (the types below
// mirror them): nodes in execution order, edges between input/op/output nodes.

/**
 * @typedef {{shape: number[] | null, dtype: string}} TensorMeta
 * @typedef {Object} GNode
 * @property {string} id
 * @property {"input" | "op" | "module" | "output"} kind
 * @property {string} name
 * @property {string} type
 * @property {string} path
 * @property {string | null} parent
 * @property {number} [call]
 * @property {TensorMeta[]} [inputs]
 * @property {TensorMeta[]} [outputs]
 * @property {number} [params]
 * @property {number} [params_total]
 * @property {number | null} [flops]
 * @property {boolean} [inplace]
 * @property {string | null} [error]
 * @typedef {{source: string, target: string, shape?: number[] | null, dtype?: string}} GEdge
 * @typedef {Object} GModule
 * @property {string} type
 * @property {string} [repr]
 * @property {{name: string, shape: number[], numel: number, dtype: string}[]} [params]
 * @property {number} [params_own]
 * @property {number} [params_total]
 * @property {{counts: number[], edges: number[]} | null} [histogram]
 * @typedef {Object} GraphData
 * @property {string} [model]
 * @property {GNode[]} nodes
 * @property {GEdge[]} edges
 * @property {Record<string, GModule>} [modules]
 * @property {string[][]} [repeats]
 * @property {string | null} [root]
 * @property {{type: string, message: string, node: string | null} | null} [error]
 *
 * @typedef {Object} GraphIndex
 * @property {GraphData} graph
 * @property {Map<string, GNode>} byId
 * @property {Map<string, number>} order      execution index of each node
 * @property {Map<string, string[]>} children child ids of each module call, in execution order
 * @property {Map<string, number>} depth      module nesting depth (root module 0; others: parent + 1)
 * @property {number} maxDepth                deepest depth at which a module has children, + 1
 * @property {Map<string, string>} runOf      member id -> key of its repeat run (the first member's id)
 * @property {Map<string, string[]>} runs     run key -> member ids
 *
 * @typedef {Object} VisNode
 * @property {string} id                 node id, or "fold:<first member id>" for a folded run
 * @property {"module" | "op" | "input" | "output" | "fold"} kind
 * @property {GNode} node                the node (a fold: its first member)
 * @property {string | null} parent      id of the visible container it sits in
 * @property {boolean} open              an expanded module drawn as a container
 * @property {string[]} [members]        a fold's member ids
 * @property {string} [run]              key of the repeat run it belongs to (a fold's or an unfolded member's)
 *
 * @typedef {Object} VisEdge
 * @property {string} id
 * @property {string} source
 * @property {string} target
 * @property {string} container   id of the visible container holding both ends ("" = top level)
 * @property {number} count       number of graph edges merged into this one
 * @property {string[]} shapes    distinct formatted shapes, in first-seen order
 * @property {string} label
 *
 * @typedef {{nodes: VisNode[], edges: VisEdge[], byId: Map<string, VisNode>, rep: (id: string) => string}} VisGraph
 */

export const FOLD_PREFIX = "fold:";

/**
 * Indexes a graph for the functions below.
 * @param {GraphData} graph
 * @returns {GraphIndex}
 */
export function indexGraph(graph) {
  const nodes = graph.nodes || [];
  /** @type {Map<string, GNode>} */
  const byId = new Map();
  /** @type {Map<string, number>} */
  const order = new Map();
  /** @type {Map<string, string[]>} */
  const children = new Map();
  nodes.forEach((n, i) => {
    byId.set(n.id, n);
    order.set(n.id, i);
  });
  for (const n of nodes) {
    if (n.parent != null && byId.has(n.parent)) {
      const list = children.get(n.parent);
      if (list) list.push(n.id);
      else children.set(n.parent, [n.id]);
    }
  }
  /** @type {Map<string, number>} */
  const depth = new Map();
  let maxDepth = 0;
  for (const n of nodes) {
    if (n.kind !== "module") continue;
    const d =
      n.parent != null && depth.has(n.parent)
        ? /** @type {number} */ (depth.get(n.parent)) + 1
        : ancestorsOf(byId, n.id).length;
    depth.set(n.id, d);
    if (children.has(n.id)) maxDepth = Math.max(maxDepth, d + 1);
  }
  /** @type {Map<string, string>} */
  const runOf = new Map();
  /** @type {Map<string, string[]>} */
  const runs = new Map();
  for (const run of graph.repeats || []) {
    const members = run.filter((id) => byId.has(id));
    if (members.length < 2) continue;
    runs.set(members[0], members);
    for (const id of members) runOf.set(id, members[0]);
  }
  return { graph, byId, order, children, depth, maxDepth, runOf, runs };
}

/**
 * Ids of the enclosing module calls of a node, outermost first.
 * @param {Map<string, GNode>} byId
 * @param {string} id
 */
function ancestorsOf(byId, id) {
  const out = [];
  const seen = new Set([id]);
  let p = byId.get(id)?.parent;
  while (p != null && byId.has(p) && !seen.has(p)) {
    out.push(p);
    seen.add(p);
    p = /** @type {GNode} */ (byId.get(p)).parent;
  }
  return out.reverse();
}

/** @param {GraphIndex} index @param {string} id */
export function ancestors(index, id) {
  return ancestorsOf(index.byId, id);
}

/** Modules with at least one child can open into a container. @param {GraphIndex} index @param {string} id */
export function canExpand(index, id) {
  const n = index.byId.get(id);
  return !!n && n.kind === "module" && (index.children.get(id)?.length || 0) > 0;
}

/** A module whose children are all ops (Conv2d running conv2d). @param {GraphIndex} index @param {string} id */
export function isLeafModule(index, id) {
  const kids = index.children.get(id) || [];
  return kids.length > 0 && kids.every((k) => index.byId.get(k)?.kind !== "module");
}

/**
 * The module calls to expand so that modules down to nesting depth n show
 * (n = 0: the whole model is one box; n = 1: the root's children show ...).
 * Leaf modules (only ops inside) stay boxes, except at n >= maxDepth, which
 * opens everything down to the last op.
 * @param {GraphIndex} index @param {number} n
 * @returns {Set<string>}
 */
export function expandedToDepth(index, n) {
  const out = new Set();
  const all = n >= index.maxDepth;
  for (const [id, d] of index.depth) {
    if (d < n && canExpand(index, id) && (all || !isLeafModule(index, id))) out.add(id);
  }
  return out;
}

/** Keys of all repeat runs (every run folded). @param {GraphIndex} index */
export function allRuns(index) {
  return new Set(index.runs.keys());
}

/**
 * A function mapping any node id to the id of the box that shows it: the node
 * itself, its outermost collapsed ancestor module, or the fold of a folded run.
 * @param {GraphIndex} index
 * @param {Set<string>} expanded
 * @param {Set<string>} folded run keys
 */
export function representative(index, expanded, folded) {
  /** @type {Map<string, string>} */
  const memo = new Map();
  /** @param {string} id @returns {string} */
  const rep = (id) => {
    const cached = memo.get(id);
    if (cached !== undefined) return cached;
    const n = index.byId.get(id);
    let out = id;
    if (n) {
      const parentRep = n.parent != null && index.byId.has(n.parent) ? rep(n.parent) : null;
      if (parentRep !== null && parentRep !== n.parent)
        out = parentRep; // hidden inside a box
      else if (parentRep !== null && !isOpen(index, expanded, n.parent || "")) out = parentRep;
      else {
        const run = index.runOf.get(id);
        if (run !== undefined && folded.has(run)) out = FOLD_PREFIX + run;
        else out = id;
      }
    }
    memo.set(id, out);
    return out;
  };
  return rep;
}

/** @param {GraphIndex} index @param {Set<string>} expanded @param {string} id */
function isOpen(index, expanded, id) {
  return expanded.has(id) && canExpand(index, id);
}

/**
 * Text of a shape: [1, 64, 56, 56] -> "1×64×56×56"; [] -> "scalar".
 * @param {number[] | null | undefined} shape
 */
export function formatShape(shape) {
  if (shape == null) return "";
  if (!shape.length) return "scalar";
  return shape.join("×");
}

/** Output shapes of a node, short: one shape, or the first and a count. @param {GNode} n */
export function outputShapeText(n) {
  const outs = (n.outputs || []).filter((o) => o && o.shape != null);
  if (!outs.length) return "";
  const first = formatShape(outs[0].shape);
  return outs.length === 1 ? first : `${first} +${outs.length - 1}`;
}

/**
 * The graph to draw: visible boxes in execution order (a container before its
 * children) and the edges between them, lifted and de-duplicated.
 * @param {GraphIndex} index
 * @param {Set<string>} expanded  module call ids shown as open containers
 * @param {Set<string>} folded    repeat run keys shown as one box
 * @returns {VisGraph}
 */
export function visibleGraph(index, expanded, folded) {
  const rep = representative(index, expanded, folded);
  /** @type {VisNode[]} */
  const nodes = [];
  /** @type {Map<string, VisNode>} */
  const byId = new Map();
  /** @param {string | null} parentId */
  const containerOf = (parentId) => (parentId != null && index.byId.has(parentId) ? parentId : null);
  for (const n of index.graph.nodes || []) {
    const r = rep(n.id);
    if (r === n.id) {
      const run = index.runOf.get(n.id);
      /** @type {VisNode} */
      const v = {
        id: n.id,
        kind: n.kind,
        node: n,
        parent: containerOf(n.parent),
        open: n.kind === "module" && isOpen(index, expanded, n.id),
      };
      if (run !== undefined) v.run = run;
      nodes.push(v);
      byId.set(v.id, v);
    } else if (r.startsWith(FOLD_PREFIX) && r === FOLD_PREFIX + n.id) {
      const members = /** @type {string[]} */ (index.runs.get(n.id));
      /** @type {VisNode} */
      const v = { id: r, kind: "fold", node: n, parent: containerOf(n.parent), open: false, members, run: n.id };
      nodes.push(v);
      byId.set(v.id, v);
    }
  }
  /** Visible ancestor chain of a visible box (outermost first). @param {string} id */
  const chain = (id) => {
    const out = [];
    let p = byId.get(id)?.parent ?? null;
    while (p != null) {
      out.push(p);
      p = byId.get(p)?.parent ?? null;
    }
    return out.reverse();
  };
  /** @type {Map<string, VisEdge>} */
  const merged = new Map();
  for (const e of index.graph.edges || []) {
    if (!index.byId.has(e.source) || !index.byId.has(e.target)) continue;
    const s = rep(e.source);
    const t = rep(e.target);
    if (s === t || !byId.has(s) || !byId.has(t)) continue;
    const key = `${s}\u0000${t}`;
    let v = merged.get(key);
    if (!v) {
      const a = chain(s);
      const b = chain(t);
      let container = "";
      for (let i = 0; i < Math.min(a.length, b.length) && a[i] === b[i]; i++) container = a[i];
      v = { id: `e:${s}>${t}`, source: s, target: t, container, count: 0, shapes: [], label: "" };
      merged.set(key, v);
    }
    v.count += 1;
    const shape = formatShape(e.shape);
    if (shape && !v.shapes.includes(shape)) v.shapes.push(shape);
  }
  const edges = [...merged.values()];
  for (const v of edges) v.label = edgeLabel(v.shapes, v.count);
  return { nodes, edges, byId, rep };
}

/** @param {string[]} shapes @param {number} count */
export function edgeLabel(shapes, count) {
  if (!shapes.length) return count > 1 ? `${count} tensors` : "";
  if (shapes.length === 1) return shapes[0]; // one tensor, maybe to several consumers in one box
  if (shapes.length === 2) return shapes.join(", ");
  return `${count} tensors`;
}

/**
 * Display name of a module call: numbered children read better with their
 * parent's name ("h.0" rather than "0"); the root shows the model type.
 * @param {GNode} n
 */
export function displayName(n) {
  if (n.kind !== "module") return n.name;
  if (n.path === "") return n.name || n.type;
  const parts = n.path.split(".");
  const last = parts[parts.length - 1];
  let name = /^\d+$/.test(last) && parts.length > 1 ? `${parts[parts.length - 2]}.${last}` : n.name || last;
  if (n.call) name += ` (call ${n.call + 1})`;
  return name;
}

/** Label of a folded run: "h.0 … h.11". @param {GraphIndex} index @param {string[]} members */
export function foldLabel(index, members) {
  const first = index.byId.get(members[0]);
  const last = index.byId.get(members[members.length - 1]);
  if (!first || !last) return "";
  if (first.path === last.path) {
    // one module called again and again (weight sharing): "shared (calls 1–3)"
    const base = displayName({ ...first, call: 0 });
    return `${base} (calls ${(first.call || 0) + 1}–${(last.call || 0) + 1})`;
  }
  return `${displayName(first)} … ${displayName(last)}`;
}

/**
 * Case-insensitive substring search over modules (path, name, type) and ops
 * (name and type: "relu" finds F.relu, torch.relu and Tensor.relu_; an op's
 * path is its module's, so it is not searched).
 *
 * A match is revealed: its ancestors open and the repeat runs hiding it
 * unfold. That goes for modules and for ops a module's forward calls itself
 * (F.relu between two layers). An op inside a leaf module (Conv2d running
 * conv2d) is that module's body, not something to open every leaf for: it
 * matches only where it shows, in the view given by `expanded` and `folded`
 * once the search has opened what it needs.
 * @param {GraphIndex} index
 * @param {string} query
 * @param {Set<string>} [expanded]  module call ids open in the current view
 * @param {Set<string>} [folded]    repeat run keys folded in the current view
 * @returns {{matches: string[], expand: string[], unfold: string[]}}
 *   matches: matching module and op ids, in execution order; expand: module
 *   call ids to open; unfold: keys of repeat runs that hide a match.
 */
export function search(index, query, expanded = new Set(), folded = new Set()) {
  const q = query.trim().toLowerCase();
  if (!q) return { matches: [], expand: [], unfold: [] };
  const matches = [];
  const expand = new Set();
  const unfold = new Set();
  /** @type {string[]} */
  const inLeaves = [];
  const has = (/** @type {unknown} */ s) =>
    String(s ?? "")
      .toLowerCase()
      .includes(q);
  for (const n of index.graph.nodes || []) {
    let hit;
    if (n.kind === "module") {
      // A module matches where the match begins: its path holds the query and its
      // parent's does not, so "downsample" finds each downsample block, not also every
      // child inside one (their paths hold it too); or by its name or its type.
      const parentPath = n.parent != null ? index.byId.get(n.parent)?.path : undefined;
      hit = (has(n.path) && !(parentPath && has(parentPath))) || has(n.name) || has(n.type);
    } else if (n.kind === "op") hit = has(n.name) || has(n.type);
    else continue;
    if (!hit) continue;
    if (n.kind === "op" && n.parent != null && isLeafModule(index, n.parent)) {
      inLeaves.push(n.id);
      continue;
    }
    matches.push(n.id);
    const anc = ancestorsOf(index.byId, n.id);
    for (const a of anc) expand.add(a);
    for (const id of [...anc, n.id]) {
      const run = index.runOf.get(id);
      if (run !== undefined) unfold.add(run); // a folded run would hide the match
    }
  }
  if (inLeaves.length) {
    const rep = representative(
      index,
      new Set([...expanded, ...expand]),
      new Set([...folded].filter((r) => !unfold.has(r))),
    );
    const shown = inLeaves.filter((id) => rep(id) === id);
    if (shown.length) {
      matches.push(...shown);
      const at = (/** @type {string} */ id) => index.order.get(id) ?? 0;
      matches.sort((a, b) => at(a) - at(b));
    }
  }
  return { matches, expand: [...expand], unfold: [...unfold] };
}

/**
 * A module's repr laid out for the details panel, one entry per line: its
 * indentation (wrapped continuations hang a little deeper than the line
 * starts) and its text in pieces, where a `keep` piece is a keyword's tuple
 * value ("kernel_size=(3, 3)") that should not break inside. Wrapping then
 * falls between arguments, never mid-word. The text is kept whole: joining
 * the pieces of every line with "\n" gives the repr back.
 * @param {string} repr
 * @returns {{indent: number, parts: {text: string, keep: boolean}[]}[]}
 */
export function reprLines(repr) {
  return String(repr)
    .split("\n")
    .map((line) => {
      const indent = line.length - line.trimStart().length;
      /** @type {{text: string, keep: boolean}[]} */
      const parts = [];
      let last = 0;
      for (const m of line.matchAll(/[\w.]+=\([^()]*\)/g)) {
        const at = m.index ?? 0;
        if (at > last) parts.push({ text: line.slice(last, at), keep: false });
        parts.push({ text: m[0], keep: true });
        last = at + m[0].length;
      }
      if (last < line.length || !parts.length) parts.push({ text: line.slice(last), keep: false });
      return { indent, parts };
    });
}

/**
 * What to open so the failing node shows: its ancestors and the runs that hide it.
 * @param {GraphIndex} index
 * @returns {{node: string | null, expand: string[], unfold: string[], text: string} | null}
 */
export function errorInfo(index) {
  const err = index.graph.error;
  if (!err) return null;
  const id = err.node != null && index.byId.has(err.node) ? err.node : null;
  const expand = id ? ancestorsOf(index.byId, id) : [];
  const unfold = [];
  if (id)
    for (const a of [...expand, id]) {
      const run = index.runOf.get(a);
      if (run !== undefined) unfold.push(run);
    }
  let where = "";
  if (id) {
    const n = /** @type {GNode} */ (index.byId.get(id));
    const modulePath = n.path || index.graph.model || "model";
    where = n.kind === "module" ? n.path || n.name || modulePath : `${n.name} in ${modulePath}`;
  }
  const head = where ? `forward failed at ${where}` : "forward failed";
  return { node: id, expand, unfold, text: `${head}: ${err.type || "Error"}: ${err.message ?? ""}` };
}

// ---------------------------------------------------------------------------
// ELK

/** Box geometry (px) shared by the ELK graph and the SVG painter. */
export const BOX = {
  moduleH: 40,
  opH: 24,
  ioH: 26,
  foldExtra: 6, // the stacked look of a fold
  padX: 8,
  info: 16, // the "i" affordance at the right of module boxes
  badge: 34, // the "×N" badge of folds (and the refold badge of unfolded members)
  chevron: 13, // the ▸ / ▾ of modules that open
  header: 28, // header band of an open container
  inset: 10, // padding of an open container
  maxW: 300,
  minW: 44,
};

/** @typedef {(text: string, font: "name" | "op" | "type" | "small") => number} Measure */

/** Rough text width when no canvas is around (tests, node). @type {Measure} */
export const estimateWidth = (text, font) =>
  text.length * (font === "name" ? 7.2 : font === "op" ? 6.8 : font === "type" ? 6.4 : 6.0);

/**
 * Lines of text a box shows; shared by sizing and painting.
 * @param {GraphIndex} index
 * @param {VisNode} v
 * @returns {{title: string, subtitle: string, detail: string, badge: string}}
 */
export function boxText(index, v) {
  const n = v.node;
  if (v.kind === "fold") {
    const members = v.members || [];
    return {
      title: foldLabel(index, members),
      subtitle: n.type,
      detail: moduleDetail(index, n),
      badge: `×${members.length}`,
    };
  }
  if (v.kind === "module") {
    const title = displayName(n);
    return { title, subtitle: n.type === title ? "" : n.type, detail: moduleDetail(index, n), badge: "" };
  }
  return { title: n.name, subtitle: "", detail: outputShapeText(n) || inputShapeText(n), badge: "" };
}

/** @param {GNode} n */
function inputShapeText(n) {
  const ins = (n.inputs || []).filter((o) => o && o.shape != null);
  return ins.length ? formatShape(ins[0].shape) : "";
}

/** @param {GraphIndex} index @param {GNode} n */
function moduleDetail(index, n) {
  const shape = outputShapeText(n);
  const total = n.params_total ?? index.graph.modules?.[n.path]?.params_total ?? 0;
  const params = total ? `${formatCount(total)} params` : "";
  return [shape, params].filter(Boolean).join(" · ");
}

/**
 * Size of a box in px (open containers: the minimum, ELK grows them).
 * @param {GraphIndex} index @param {VisNode} v @param {Measure} measure
 */
export function boxSize(index, v, measure = estimateWidth) {
  const t = boxText(index, v);
  const chevron = v.kind === "module" && canExpand(index, v.id) ? BOX.chevron : 0;
  const refold = v.run !== undefined && v.kind === "module" ? BOX.badge : 0;
  if (v.open) {
    const head =
      chevron + measure(t.title, "name") + 8 + measure(t.subtitle, "type") + 8 + measure(`· ${t.detail}`, "small");
    return {
      width: Math.min(BOX.maxW * 2, Math.ceil(head + 2 * BOX.padX + BOX.info + refold)),
      height: BOX.header + 2 * BOX.inset,
    };
  }
  if (v.kind === "module" || v.kind === "fold") {
    const line1 = chevron + measure(t.title, "name") + 8 + measure(t.subtitle, "type");
    const line2 = measure(t.detail, "small");
    let w = Math.max(line1, line2) + 2 * BOX.padX + BOX.info + refold;
    if (v.kind === "fold") w += BOX.badge + BOX.foldExtra;
    const width = clampW(w);
    return { width, height: BOX.moduleH + (v.kind === "fold" ? BOX.foldExtra : 0) };
  }
  const w =
    measure(t.title, v.kind === "op" ? "op" : "name") +
    8 +
    measure(t.detail, "small") +
    2 * BOX.padX +
    (v.kind === "op" ? 0 : 8);
  return { width: clampW(w), height: v.kind === "op" ? BOX.opH : BOX.ioH };
}

/** @param {number} w */
function clampW(w) {
  return Math.ceil(Math.max(BOX.minW, Math.min(BOX.maxW, w)));
}

/**
 * Options of each level: with INCLUDE_CHILDREN, ELK still reads most layered
 * options from the graph a node sits in, so every container repeats these.
 */
export const LEVEL_OPTIONS = {
  // Fewer crossing-minimisation passes: ~1.7x faster on big graphs, same pictures on DNN-like graphs.
  "elk.layered.thoroughness": "3",
  // One fixed Brandes-Köpf alignment: with the default (narrowest of four, per level)
  // a stack of identical blocks drifts sideways block after block, because each
  // block's way in and way out sit at different x; LEFTUP keeps traced GPT/ViT/ResNet
  // stacks in one column.
  "elk.layered.nodePlacement.bk.fixedAlignment": "LEFTUP",
  "elk.layered.spacing.nodeNodeBetweenLayers": "32", // room for a shape label between layers
  "elk.spacing.nodeNode": "18",
  "elk.spacing.edgeNode": "12",
  "elk.spacing.edgeEdge": "8",
  "elk.layered.spacing.edgeNodeBetweenLayers": "14",
  "elk.layered.spacing.edgeEdgeBetweenLayers": "8",
  // The edges of one output share their way out (a fan-out is one line that branches):
  // an LLM's rotary embedding feeds all 32 layers, and one lane per edge made the
  // unfolded 8B graph 13,768 px wide (2,430 px merged) and ELK 40 % slower.
  "elk.layered.mergeEdges": "true",
};

/** Layout options on the ELK root (all coordinates come back absolute). */
export const ELK_OPTIONS = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.edgeRouting": "ORTHOGONAL",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  ...LEVEL_OPTIONS,
  "elk.json.shapeCoords": "ROOT",
  "elk.json.edgeCoords": "ROOT",
  "elk.padding": "[top=12,left=12,bottom=12,right=12]",
};

/** Extra root options when ELK places the edge labels (each gets its own slot between layers). */
export const LABEL_OPTIONS = {
  "elk.layered.spacing.nodeNodeBetweenLayers": "14",
  "elk.edgeLabels.inline": "true",
  "elk.spacing.edgeLabel": "1",
};
const LABEL_H = 12;

/**
 * @typedef {Object} ElkNode
 * @property {string} id
 * @property {number} [width]
 * @property {number} [height]
 * @property {number} [x]
 * @property {number} [y]
 * @property {ElkNode[]} [children]
 * @property {{id: string, sources: string[], targets: string[], sections?: any[]}[]} [edges]
 * @property {Record<string, string>} [layoutOptions]
 */

/**
 * The visible graph as an ELK graph: open modules are compound nodes holding
 * their visible children, in execution order (with considerModelOrder this
 * keeps the rest of the picture in place when one module opens); each edge
 * lives in the innermost container of both its ends.
 * @param {GraphIndex} index
 * @param {VisGraph} vis
 * @param {Object} [opts]
 * @param {Measure} [opts.measure]      text widths (default: a rough estimate)
 * @param {Record<string, string>} [opts.options] extra root options
 * @param {boolean} [opts.edgeLabels]   give ELK the shape labels to place (default false:
 *   a slot between layers for each label makes the layout ~1.6x taller and ~1.5x slower;
 *   placeLabels puts them in the room left over instead)
 * @param {boolean} [opts.transposed]   ELK reads a compound node's minimum size and
 *   content alignment in its internal left-to-right frame when the direction
 *   is DOWN (elkjs 0.12); graph.js checks once (probeGraph) and passes true if so.
 * @returns {ElkNode}
 */
export function toElk(index, vis, opts = {}) {
  const { measure = estimateWidth, options = {}, edgeLabels = false, transposed = false } = opts;
  /** @type {ElkNode} */
  const root = {
    id: "__root__",
    layoutOptions: { ...ELK_OPTIONS, ...(edgeLabels ? LABEL_OPTIONS : {}), ...options },
    children: [],
    edges: [],
  };
  /** @type {Map<string, ElkNode>} */
  const elkById = new Map();
  /** @type {[VisNode, ElkNode][]} */
  const pairs = [];
  for (const v of vis.nodes) {
    const size = boxSize(index, v, measure);
    /** @type {ElkNode} */
    const e = { id: v.id };
    if (v.open) {
      e.children = [];
      e.edges = [];
      e.layoutOptions = {
        ...LEVEL_OPTIONS, // (considerModelOrder on a container crashes elkjs 0.12: root only)
        "elk.padding": `[top=${BOX.header + BOX.inset},left=${BOX.inset},bottom=${BOX.inset},right=${BOX.inset}]`,
        "elk.nodeSize.constraints": "MINIMUM_SIZE",
        "elk.nodeSize.minimum": transposed ? `(${size.height}, ${size.width})` : `(${size.width}, ${size.height})`,
        "elk.contentAlignment": transposed ? "[V_CENTER, H_LEFT]" : "[H_CENTER, V_TOP]",
      };
    } else {
      e.width = size.width;
      e.height = size.height;
    }
    elkById.set(v.id, e);
    pairs.push([v, e]);
  }
  // Attach after creating all, so a container listed after its children still holds them.
  for (const [v, e] of pairs) {
    const parent = (v.parent != null && elkById.get(v.parent)) || root;
    if (!parent.children) parent.children = [];
    /** @type {ElkNode[]} */ (parent.children).push(e);
  }
  for (const edge of vis.edges) {
    const holder = (edge.container && elkById.get(edge.container)) || root;
    /** @type {any} */
    const e = { id: edge.id, sources: [edge.source], targets: [edge.target] };
    if (edgeLabels && edge.label) {
      e.labels = [
        {
          id: `${edge.id}:label`,
          text: edge.label,
          width: Math.ceil(measure(edge.label, "small") + 6),
          height: LABEL_H,
        },
      ];
    }
    /** @type {any[]} */ (holder.edges).push(e);
  }
  return root;
}

/**
 * Flattens ELK's answer (absolute coordinates with json.shapeCoords = ROOT)
 * into boxes and polylines.
 * @param {ElkNode} laid
 * @returns {{boxes: Map<string, {x: number, y: number, width: number, height: number}>, paths: Map<string, number[][]>, labels: Map<string, {x: number, y: number, width: number, height: number}>, width: number, height: number}}
 */
export function readLayout(laid) {
  const boxes = new Map();
  const paths = new Map();
  const labels = new Map();
  /** @param {ElkNode} n */
  const walk = (n) => {
    for (const c of n.children || []) {
      boxes.set(c.id, { x: c.x || 0, y: c.y || 0, width: c.width || 0, height: c.height || 0 });
      walk(c);
    }
    for (const e of n.edges || []) {
      const pts = [];
      for (const s of e.sections || []) {
        if (!pts.length) pts.push([s.startPoint.x, s.startPoint.y]);
        for (const b of s.bendPoints || []) pts.push([b.x, b.y]);
        pts.push([s.endPoint.x, s.endPoint.y]);
      }
      paths.set(e.id, pts);
      const l = /** @type {any} */ (e).labels?.[0];
      if (l && l.x != null) labels.set(e.id, { x: l.x, y: l.y, width: l.width || 0, height: l.height || 0 });
    }
  };
  walk(laid);
  return { boxes, paths, labels, width: laid.width || 0, height: laid.height || 0 };
}

/**
 * @typedef {{x: number, y: number, width: number, height: number}} Rect
 * @typedef {{x: number, y: number, anchor: "start" | "end"}} LabelSpot
 */

/**
 * Places the edges' shape labels beside vertical runs of their polylines,
 * where they touch no box, no container header or border, no other edge and
 * no other label; a label that fits nowhere is left out. A tensor going to
 * several consumers is labelled once. Runs in O(labels) with a grid index.
 * @param {VisGraph} vis
 * @param {{boxes: Map<string, Rect>, paths: Map<string, number[][]>}} laid
 * @param {Measure} [measure]
 * @param {{height?: number, gap?: number, step?: number, header?: number}} [opts]
 * @returns {Map<string, LabelSpot>} edge id -> where the label's text starts (anchor "start") or ends ("end"), y its middle
 */
export function placeLabels(vis, laid, measure = estimateWidth, opts = {}) {
  const { height = 11, gap = 4, step = 3, header = BOX.header } = opts;
  // a grid of cells, each listing the rectangles that meet it (one flat array: an unfolded
  // LLM is ~40 x 2,900 cells; cells grow where a graph would need too many)
  let right = 0;
  let bottom = 0;
  for (const b of laid.boxes.values()) {
    right = Math.max(right, b.x + b.width);
    bottom = Math.max(bottom, b.y + b.height);
  }
  for (const pts of laid.paths.values())
    for (const [x, y] of pts) {
      right = Math.max(right, x);
      bottom = Math.max(bottom, y);
    }
  let CELL = 48;
  while ((right / CELL + 2) * (bottom / CELL + 2) > 1 << 21) CELL *= 2;
  const cols = Math.ceil(right / CELL) + 2;
  const rows = Math.ceil(bottom / CELL) + 2;
  /** @type {(Rect[] | undefined)[]} */
  const grid = new Array(cols * rows);
  // cells by position, clamped to the grid (a rectangle beyond the edge is in the edge's cells)
  /** @param {number} x */
  const col = (x) => Math.max(0, Math.min(cols - 1, Math.floor(x / CELL)));
  /** @param {number} y */
  const row = (y) => Math.max(0, Math.min(rows - 1, Math.floor(y / CELL)));
  /** @param {Rect} r */
  const add = (r) => {
    const c1 = col(r.x + r.width);
    const r0 = row(r.y);
    const r1 = row(r.y + r.height);
    for (let cx = col(r.x); cx <= c1; cx++) {
      for (let cy = r0; cy <= r1; cy++) {
        const k = cy * cols + cx;
        const list = grid[k];
        if (list) list.push(r);
        else grid[k] = [r];
      }
    }
  };
  /** @param {Rect} r */
  const free = (r) => {
    const c1 = col(r.x + r.width);
    const r0 = row(r.y);
    const r1 = row(r.y + r.height);
    for (let cx = col(r.x); cx <= c1; cx++) {
      for (let cy = r0; cy <= r1; cy++) {
        const list = grid[cy * cols + cx];
        if (!list) continue;
        for (const o of list) {
          if (r.x < o.x + o.width && o.x < r.x + r.width && r.y < o.y + o.height && o.y < r.y + r.height) return false;
        }
      }
    }
    return true;
  };
  for (const v of vis.nodes) {
    const b = laid.boxes.get(v.id);
    if (!b) continue;
    if (v.open) {
      add({ x: b.x, y: b.y, width: b.width, height: header }); // header band
      add({ x: b.x - 2, y: b.y, width: 4, height: b.height }); // borders
      add({ x: b.x + b.width - 2, y: b.y, width: 4, height: b.height });
      add({ x: b.x, y: b.y + b.height - 2, width: b.width, height: 4 });
    } else add({ x: b.x - 2, y: b.y - 2, width: b.width + 4, height: b.height + 4 });
  }
  // edges' segments; the branches of a fan-out share their trunk (ELK merges them): the
  // segments on one line are merged where they overlap or touch (the same area, far fewer cells)
  /** @type {Map<string, number[][]>} */
  const lines = new Map();
  for (const pts of laid.paths.values()) {
    for (let i = 0; i + 1 < pts.length; i++) {
      const [x0, y0] = pts[i];
      const [x1, y1] = pts[i + 1];
      const k = x0 === x1 ? `v${x0}` : y0 === y1 ? `h${y0}` : "";
      const span = x0 === x1 ? [Math.min(y0, y1), Math.max(y0, y1)] : [Math.min(x0, x1), Math.max(x0, x1)];
      if (!k) {
        add({
          x: span[0] - 1.5,
          y: Math.min(y0, y1) - 1.5,
          width: span[1] - span[0] + 3,
          height: Math.abs(y1 - y0) + 3,
        });
        continue;
      }
      const l = lines.get(k);
      if (l) l.push(span);
      else lines.set(k, [span]);
    }
  }
  for (const [k, spans] of lines) {
    const at = Number(k.slice(1));
    spans.sort((a, b) => a[0] - b[0]);
    /** @param {number} a @param {number} b */
    const put = (a, b) =>
      add(
        k[0] === "v"
          ? { x: at - 1.5, y: a - 1.5, width: 3, height: b - a + 3 }
          : { x: a - 1.5, y: at - 1.5, width: b - a + 3, height: 3 },
      );
    let [a, b] = spans[0];
    for (let i = 1; i < spans.length; i++) {
      const [c, d] = spans[i];
      if (c <= b) b = Math.max(b, d);
      else {
        put(a, b);
        [a, b] = [c, d];
      }
    }
    put(a, b);
  }
  /** @type {Map<string, LabelSpot>} */
  const out = new Map();
  const done = new Set();
  for (const e of vis.edges) {
    if (!e.label) continue;
    const once = `${e.source}\u0000${e.label}`;
    if (done.has(once)) continue;
    const pts = laid.paths.get(e.id);
    if (!pts) continue;
    const w = measure(e.label, "small") + 2;
    let spot = null;
    for (let i = 0; i + 1 < pts.length && !spot; i++) {
      const [x0, y0] = pts[i];
      const [x1, y1] = pts[i + 1];
      if (Math.abs(x1 - x0) > 0.5 || y1 - y0 < height + 4) continue;
      for (let y = y0 + 2 + height / 2; y <= y1 - 2 - height / 2 && !spot; y += step) {
        const right = { x: x0 + gap, y: y - height / 2, width: w, height };
        if (free(right)) {
          spot = { x: x0 + gap, y, anchor: /** @type {const} */ ("start"), rect: right };
          break;
        }
        const left = { x: x0 - gap - w, y: y - height / 2, width: w, height };
        if (free(left)) spot = { x: x0 - gap, y, anchor: /** @type {const} */ ("end"), rect: left };
      }
    }
    if (!spot) continue;
    add(spot.rect);
    done.add(once);
    out.set(e.id, { x: spot.x, y: spot.y, anchor: spot.anchor });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Numbers

/**
 * Compact count: 950, 23.5k, 1.2M, 3.4B.
 * @param {number | null | undefined} n
 */
export function formatCount(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  /** @param {number} v @param {string} unit */
  const f = (v, unit) => {
    const s = v >= 100 ? v.toFixed(0) : v.toFixed(1);
    return `${s.replace(/\.0$/, "")}${unit}`;
  };
  const sign = n < 0 ? "-" : "";
  if (a < 1e3) return sign + String(Math.round(a));
  if (a < 999.5e3) return sign + f(a / 1e3, "k");
  if (a < 999.5e6) return sign + f(a / 1e6, "M");
  if (a < 999.5e9) return sign + f(a / 1e9, "B");
  return sign + f(a / 1e12, "T");
}

/**
 * FLOPs with an SI prefix: "4.1 GFLOPs", "820 MFLOPs", "12 FLOPs"; "–" when unknown.
 * @param {number | null | undefined} n
 */
export function formatFlops(n) {
  if (n == null || !Number.isFinite(n)) return "–";
  const units = ["", "K", "M", "G", "T", "P", "E"];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v.toFixed(1).replace(/\.0$/, "");
  return `${n < 0 ? "-" : ""}${s} ${units[i]}FLOPs`;
}

/** Thousands separators: 1234567 -> "1,234,567". @param {number} n */
export function formatInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

/**
 * Colour scale of overlay values: linear over [min, max], or log10 when all
 * values are positive and span more than 3 decades.
 * @param {Record<string, number | null> | null | undefined} values (nulls and non-finite values are ignored)
 * @returns {{min: number, max: number, log: boolean, t: (v: number) => number} | null}
 */
export function overlayScale(values) {
  if (!values) return null;
  let min = Infinity;
  let max = -Infinity;
  for (const v of Object.values(values)) {
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min > max) return null;
  const log = min > 0 && max / min > 1e3;
  if (log) {
    const lo = Math.log10(min);
    const span = Math.log10(max) - lo;
    return { min, max, log, t: (v) => (v > 0 ? (Math.log10(v) - lo) / span : 0) };
  }
  const span = max - min;
  return { min, max, log, t: (v) => (span > 0 ? (v - min) / span : 0.5) };
}

/** Short text of an overlay value. @param {number} v */
export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

/**
 * A tiny graph that tells whether ELK reads a compound node's minimum size
 * transposed: lay it out, then pass the answer to minimumIsTransposed.
 * @returns {ElkNode}
 */
export function probeGraph() {
  return {
    id: "probe",
    layoutOptions: { ...ELK_OPTIONS },
    children: [
      {
        id: "c",
        layoutOptions: { "elk.nodeSize.constraints": "MINIMUM_SIZE", "elk.nodeSize.minimum": "(300, 40)" },
        children: [{ id: "b", width: 20, height: 20 }],
      },
    ],
    edges: [],
  };
}

/** @param {ElkNode} laid the laid-out probeGraph() */
export function minimumIsTransposed(laid) {
  const c = (laid.children || [])[0];
  return !!c && (c.width || 0) < 300;
}

/**
 * What the details panel states of a node, as [label, value] pairs: a module's call
 * number, parameters and FLOPs; an op's module, FLOPs and whether it writes in place;
 * the error where the forward failed.
 * @param {GraphIndex} index
 * @param {GNode} n
 * @returns {[string, string][]}
 */
export function detailFacts(index, n) {
  const mod = n.kind === "module" ? index.graph.modules?.[n.path] : undefined;
  /** @type {[string, string][]} */
  const facts = [];
  if (n.kind === "module") {
    if (n.call) facts.push(["call", `#${n.call + 1} of this module`]);
    facts.push(["own params", formatInt(mod?.params_own ?? n.params ?? 0)]);
    facts.push(["total params", formatInt(mod?.params_total ?? n.params_total ?? 0)]);
    facts.push(["FLOPs", n.flops == null ? "not counted" : `${formatFlops(n.flops)} (${formatInt(n.flops)})`]);
  } else {
    facts.push(["kind", n.kind]);
    if (n.kind === "op") facts.push(["in module", n.path || index.graph.model || "(root)"]);
    if (n.kind === "op" && n.flops) facts.push(["FLOPs", `${formatFlops(n.flops)} (${formatInt(n.flops)})`]);
    if (n.inplace) facts.push(["in place", "yes: modifies its input"]);
  }
  if (n.error) facts.push(["error", n.error]);
  return facts;
}
