// @ts-check
// Layout of big graphs by blocks: identical open members of a repeat run (the 32
// decoder layers of an LLM) are laid out once, by ELK on their own, and that block
// layout is stamped into every member; the rest of the graph is laid out with each
// stamped member as one fixed-size box. An edge that enters or leaves a member is
// joined from its outer route and the member's inner route (which starts or ends at
// an invisible point at the block's top or bottom edge). Members of a run whose
// pictures differ (one decoder layer with a sub-block closed) form blocks of their own.
// A block's layout depends only on its signature, so a view keeps them in a cache
// across layouts: opening or closing a box inside one decoder layer lays out that
// layer's inside and the small outer graph; the other layers reuse their layout. After
// a layout, the view lays out in idle time the pictures one click inside a block would
// ask for (nextPictures, keepPicture): the first such click then needs no ELK either.
// Pure functions, no DOM: js/tests/graph-blocks.test.mjs checks that a stamped block
// equals a fresh layout, and that a layout assembled from the cache equals a fresh one.
import { BOX, boxSize, canExpand, estimateWidth, readLayout, toElk, visibleGraph } from "./graph-view.js";

/**
 * @typedef {import("./graph-view.js").GraphIndex} GraphIndex
 * @typedef {import("./graph-view.js").VisGraph} VisGraph
 * @typedef {import("./graph-view.js").VisNode} VisNode
 * @typedef {import("./graph-view.js").VisEdge} VisEdge
 * @typedef {import("./graph-view.js").ElkNode} ElkNode
 * @typedef {import("./graph-view.js").Measure} Measure
 * @typedef {{x: number, y: number, width: number, height: number}} Rect
 * @typedef {{boxes: Map<string, Rect>, paths: Map<string, number[][]>, labels: Map<string, Rect>, width: number, height: number}} Laid
 *
 * @typedef {Object} Member        one open member of a run, seen from the block's side
 * @property {string} id
 * @property {string[]} inside     its visible descendants, in vis order
 * @property {VisEdge[]} internal  edges with both ends inside
 * @property {VisEdge[]} into      edges from outside to a node inside, in vis order
 * @property {VisEdge[]} out       edges from a node inside to outside, in vis order
 * @property {number[]} inPort     port of each edge in `into` (an index into inTargets)
 * @property {number[]} outPort    port of each edge in `out` (an index into outSources)
 * @property {string[]} inTargets  inside boxes that edges enter, one port each
 * @property {string[]} outSources inside boxes that edges leave, one port each
 * @property {string} signature    equal signatures: the same picture up to translation
 *
 * @typedef {{template: Member, members: Member[]}} Block
 * @typedef {{outer: ElkNode, blocks: Block[]}} BlockPlan
 *
 * @typedef {Object} BlockLaid     a block's layout relative to its member's top-left, by
 *                                 position (the same for every member of that signature)
 * @property {Rect[]} boxes        one per `inside` box
 * @property {number[][][]} internal one route per `internal` edge
 * @property {number[][][]} ins    one route per in-port: from the block's top to `inTargets[i]`
 * @property {number[][][]} outs   one route per out-port: from `outSources[i]` to the bottom
 * @property {number} width
 * @property {number} height
 *
 * @typedef {Object} LayoutCache  one view's layouts, for one graph and one text measure
 * @property {Map<string, BlockLaid>} blocks   block layouts by signature
 * @property {Map<string, {laid: Laid, edges: string[]}>} outers  outer layouts by their ELK graph
 *                                             (sizes included, edge ids left out), with its edge ids
 * @property {{structure: string, sizes: Map<string, Rect>, laid: Laid, edges: string[]} | null} last
 *                                             the last outer layout, its graph without members' sizes
 * @property {boolean} patch                   whether an outer layout may be patched (see patchOuter)
 */

/** Blocks are worth it only from this many visible boxes on. */
export const MIN_BOXES = 300;
const PORT = "__port:";

/**
 * The member's visible subtree, the edges that touch it, and its signature (structure,
 * names, box sizes and edge labels, relative to the member).
 * @param {GraphIndex} index @param {VisGraph} vis @param {string} id @param {Measure} measure
 * @param {Map<string, VisEdge[]>} touching edges by visible end
 * @param {Map<VisEdge, number>} edgeOrder each edge's position in vis.edges
 * @param {string[]} inside the member's visible descendants, in vis order
 * @param {(index: GraphIndex, v: VisNode, measure: Measure) => {width: number, height: number}} size
 * @returns {Member}
 */
function memberOf(index, vis, id, measure, touching, edgeOrder, inside, size) {
  const rel = new Map(inside.map((x, i) => [x, i]));
  rel.set(id, -1);
  const parts = [];
  for (const x of inside) {
    const v = /** @type {VisNode} */ (vis.byId.get(x));
    const s = size(index, v, measure);
    parts.push(
      `${v.kind}|${v.node.type}|${v.node.name}|${v.open}|${rel.get(v.parent ?? "")}|${s.width}x${s.height}|${v.kind === "fold" ? v.members?.length : ""}`,
    );
  }
  /** @type {Set<VisEdge>} */
  const seen = new Set();
  /** @type {VisEdge[]} */ const internal = [];
  /** @type {VisEdge[]} */ const into = [];
  /** @type {VisEdge[]} */ const out = [];
  for (const x of inside) for (const e of touching.get(x) || []) seen.add(e);
  const order = (/** @type {VisEdge} */ e) => /** @type {number} */ (edgeOrder.get(e));
  for (const e of [...seen].sort((a, b) => order(a) - order(b))) {
    const s = rel.has(e.source) && e.source !== id;
    const t = rel.has(e.target) && e.target !== id;
    if (s && t) internal.push(e);
    else if (t) into.push(e);
    else out.push(e);
  }
  for (const e of internal) parts.push(`e|${rel.get(e.source)}>${rel.get(e.target)}|${e.label}`);
  // one port per inside box that edges enter (or leave), however many edges use it
  /** @param {string[]} ends */
  const ports = (ends) => {
    /** @type {string[]} */ const distinct = [];
    const at = ends.map((x) => {
      let i = distinct.indexOf(x);
      if (i < 0) i = distinct.push(x) - 1;
      return i;
    });
    return { distinct, at };
  };
  const ins = ports(into.map((e) => e.target));
  const outs = ports(out.map((e) => e.source));
  parts.push(`in|${ins.distinct.map((x) => rel.get(x)).join(",")}`);
  parts.push(`out|${outs.distinct.map((x) => rel.get(x)).join(",")}`);
  return {
    id,
    inside,
    internal,
    into,
    out,
    inPort: ins.at,
    outPort: outs.at,
    inTargets: ins.distinct,
    outSources: outs.distinct,
    signature: parts.join("\n"),
  };
}

/**
 * Splits a layout into blocks where that pays: runs with two or more open members
 * whose pictures are the same (outermost runs only); there, every open member with two
 * or more boxes inside is stamped, one block per distinct picture. Returns null when nothing is
 * to be gained (small graphs, no such runs): lay out `toElk(index, vis)` as before.
 * @param {GraphIndex} index @param {VisGraph} vis
 * @param {{measure?: Measure, transposed?: boolean, minBoxes?: number, size?: (index: GraphIndex, v: VisNode, measure: Measure) => {width: number, height: number}}} opts
 * @returns {BlockPlan | null}
 */
export function planBlocks(index, vis, opts) {
  const { measure, transposed = false, minBoxes = MIN_BOXES, size } = opts;
  if (vis.nodes.length < minBoxes || !measure || !size) return null;
  /** @type {Map<string, VisEdge[]>} */
  const touching = new Map();
  for (const e of vis.edges) {
    for (const end of [e.source, e.target]) {
      const l = touching.get(end);
      if (l) l.push(e);
      else touching.set(end, [e]);
    }
  }
  /** Visible ancestors of a box, innermost first. @param {string} id */
  const chain = (id) => {
    const out = [];
    let p = vis.byId.get(id)?.parent ?? null;
    while (p != null) {
      out.push(p);
      p = vis.byId.get(p)?.parent ?? null;
    }
    return out;
  };
  /** @type {Map<string, string[]>} */
  const chains = new Map();
  /** @type {Map<string, string[]>} visible descendants of each open box, in vis order */
  const insideOf = new Map();
  for (const v of vis.nodes) {
    const c = chain(v.id);
    chains.set(v.id, c);
    for (const a of c) {
      const l = insideOf.get(a);
      if (l) l.push(v.id);
      else insideOf.set(a, [v.id]);
    }
  }
  /** @type {Map<VisEdge, number>} */
  const edgeOrder = new Map(vis.edges.map((e, i) => [e, i]));
  /** @type {Block[]} */
  const blocks = [];
  /** @type {Set<string>} */
  const stamped = new Set(); // members laid out as blocks (their insides leave the outer graph)
  // outermost runs first: a run inside a stamped member is part of that member's block
  const runs = [...index.runs.values()].sort((a, b) => (index.depth.get(a[0]) ?? 0) - (index.depth.get(b[0]) ?? 0));
  for (const runMembers of runs) {
    const open = runMembers.filter((m) => vis.byId.get(m)?.open);
    if (open.length < 2) continue;
    if (open.some((m) => (chains.get(m) || []).some((a) => stamped.has(a)))) continue;
    const members = open.map((m) => memberOf(index, vis, m, measure, touching, edgeOrder, insideOf.get(m) || [], size));
    // one block per picture: the run's usual one, and one for each member opened differently
    /** @type {Map<string, Member[]>} */
    const bySignature = new Map();
    for (const m of members) {
      if (m.inside.length < 2) continue; // nothing to lay out on its own
      const same = bySignature.get(m.signature);
      if (same) same.push(m);
      else bySignature.set(m.signature, [m]);
    }
    if (![...bySignature.values()].some((same) => same.length >= 2)) continue;
    for (const same of bySignature.values()) {
      for (const m of same) stamped.add(m.id);
      blocks.push({ template: same[0], members: same });
    }
  }
  if (!blocks.length) return null;
  // the outer graph: stamped members are closed boxes of their block's size (set by sizeMembers)
  const hidden = new Set();
  for (const b of blocks) for (const m of b.members) for (const x of m.inside) hidden.add(x);
  /** @type {Map<string, string>} */
  const lift = new Map();
  for (const b of blocks) for (const m of b.members) for (const x of m.inside) lift.set(x, m.id);
  const nodes = vis.nodes.filter((v) => !hidden.has(v.id)).map((v) => (stamped.has(v.id) ? { ...v, open: false } : v));
  const edges = [];
  for (const e of vis.edges) {
    const s = lift.get(e.source) ?? e.source;
    const t = lift.get(e.target) ?? e.target;
    if (s === t) continue; // inside one member: the block holds it
    edges.push(s === e.source && t === e.target ? e : { ...e, source: s, target: t });
  }
  /** @type {VisGraph} */
  const outerVis = { nodes, edges, byId: new Map(nodes.map((v) => [v.id, v])), rep: vis.rep };
  const outer = toElk(index, outerVis, { measure, transposed });
  return { outer, blocks };
}

/**
 * A member's inside as an ELK graph of its own: the root stands for the member's box
 * (header and inset as padding); each edge in or out gets a point-sized port node in
 * the first or last layer.
 * @param {GraphIndex} index @param {VisGraph} vis @param {Member} m @param {Measure} measure
 * @param {boolean} transposed
 */
export function blockGraph(index, vis, m, measure, transposed = false) {
  const inside = new Set(m.inside);
  const nodes = vis.nodes.filter((v) => inside.has(v.id)).map((v) => (v.parent === m.id ? { ...v, parent: null } : v));
  const edges = m.internal.map((e) => (e.container === m.id ? { ...e, container: "" } : e));
  /** @type {VisGraph} */
  const sub = { nodes, edges, byId: new Map(nodes.map((v) => [v.id, v])), rep: vis.rep };
  const g = toElk(index, sub, { measure, transposed });
  g.layoutOptions = {
    ...g.layoutOptions,
    "elk.padding": `[top=${BOX.header + BOX.inset},left=${BOX.inset},bottom=${BOX.inset},right=${BOX.inset}]`,
  };
  const children = /** @type {ElkNode[]} */ (g.children);
  const gEdges = /** @type {any[]} */ (g.edges);
  /** A point-sized port node in the first (in) or last (out) layer, and its edge to `inner`. */
  const port = (/** @type {"in" | "out"} */ side, /** @type {number} */ i, /** @type {string} */ inner) => {
    const pid = `${PORT}${side}:${i}`;
    const layer = side === "in" ? "FIRST_SEPARATE" : "LAST_SEPARATE";
    children.push({ id: pid, width: 1, height: 1, layoutOptions: { "elk.layered.layering.layerConstraint": layer } });
    const [source, target] = side === "in" ? [pid, inner] : [inner, pid];
    gEdges.push({ id: `${PORT}e:${side}:${i}`, sources: [source], targets: [target] });
  };
  for (const [i, target] of m.inTargets.entries()) port("in", i, target);
  for (const [i, source] of m.outSources.entries()) port("out", i, source);
  return g;
}

/**
 * A laid-out block graph (readLayout of blockGraph(…, m, …)) by position: what a cache
 * keeps, valid for every member with m's signature.
 * @param {Laid} laid @param {Member} m
 * @returns {BlockLaid}
 */
export function relativeLaid(laid, m) {
  const none = { x: 0, y: 0, width: 0, height: 0 };
  return {
    boxes: m.inside.map((x) => laid.boxes.get(x) ?? none),
    internal: m.internal.map((e) => laid.paths.get(e.id) ?? []),
    ins: m.inTargets.map((_, i) => laid.paths.get(`${PORT}e:in:${i}`) ?? []),
    outs: m.outSources.map((_, i) => laid.paths.get(`${PORT}e:out:${i}`) ?? []),
    width: laid.width,
    height: laid.height,
  };
}

/** Layouts kept per view, at most, of each kind (a view's pictures rarely reach it). */
const CACHE_MAX = 256;
const OUTERS_MAX = 16;

/**
 * An empty cache for layoutVisible. `patch`: an outer graph that differs from the last
 * one only in its members' sizes (a box opened inside one decoder layer) is not laid out
 * again when patchOuter can move the last layout safely; such a layout is correct (every
 * box placed, no two overlapping, every edge joined) but not always ELK's own.
 * @param {{patch?: boolean}} [opts]
 * @returns {LayoutCache}
 */
export function layoutCache({ patch = true } = {}) {
  return { blocks: new Map(), outers: new Map(), last: null, patch };
}

/** A block layout's key in a cache. @param {Member} m @param {boolean} transposed */
function blockKey(m, transposed) {
  return `${transposed}\n${m.signature}`;
}

/**
 * `map.set(key, value)`, the map emptied first when it holds `max` entries (a view's
 * pictures rarely get there: no eviction order is worth keeping).
 * @template V @param {Map<string, V>} map @param {number} max @param {string} key @param {V} value
 */
function keep(map, max, key, value) {
  if (map.size >= max) map.clear();
  map.set(key, value);
}

/**
 * @typedef {Object} NextPicture  a block picture a click would ask for, to lay out ahead
 * @property {string} key          its key in the cache
 * @property {ElkNode} graph       its ELK graph (blockGraph)
 * @property {Member} member       the member it was made from
 * @property {string} toggle       the box whose click asks for it
 */

/**
 * The block pictures one click inside a block would ask for and `cache` lacks: for the
 * template member of each block of the view, each open module directly inside it closed
 * and (`open`, default true) each closed module there that can open, opened. Lazy: each
 * step computes one toggled view (visibleGraph, planBlocks: ~10 ms for 2,337 boxes) and
 * yields its member's block graph, or null when the cache holds that picture by then or it
 * would not be a block (a caller takes one step per idle slot, lays the pictures out one at
 * a time and keeps them with keepPicture). Nothing for views not laid out by blocks.
 * @param {GraphIndex} index @param {VisGraph} vis the view laid out last
 * @param {{expanded: Set<string>, folded: Set<string>, cache: LayoutCache, measure?: Measure,
 *   transposed?: boolean, minBoxes?: number, open?: boolean}} opts the sets `vis` was made from
 * @returns {Generator<NextPicture | null, void, void>}
 */
export function* nextPictures(index, vis, opts) {
  const { measure, open = true } = opts;
  if (!measure) return; // layoutVisible makes no blocks then
  const plan = planBlocks(index, vis, { ...opts, size: boxSize });
  if (!plan) return;
  /** @type {[string, string][]} [template, box to toggle] */
  const toggles = [];
  for (const close of open ? [true, false] : [true]) {
    for (const b of plan.blocks) {
      for (const x of b.template.inside) {
        const v = /** @type {VisNode} */ (vis.byId.get(x));
        if (v.parent !== b.template.id || v.kind !== "module") continue;
        if (close ? v.open : !v.open && canExpand(index, x)) toggles.push([b.template.id, x]);
      }
    }
  }
  /** @type {Set<string>} */
  const yielded = new Set();
  for (const [template, x] of toggles) {
    // (in a function of its own: the toggled view is not kept while the picture is laid out)
    const picture = pictureAfter(index, template, x, opts);
    if (!picture || yielded.has(picture.key)) yield null;
    else {
      yielded.add(picture.key);
      yield picture;
    }
  }
}

/**
 * The block picture of `template` after a click on `x` inside it; null when that view
 * would not lay it out as a block, or the cache holds that picture.
 * @param {GraphIndex} index @param {string} template @param {string} x
 * @param {{expanded: Set<string>, folded: Set<string>, cache: LayoutCache, measure?: Measure,
 *   transposed?: boolean, minBoxes?: number}} opts
 * @returns {NextPicture | null}
 */
function pictureAfter(index, template, x, opts) {
  const { expanded, folded, cache, measure = estimateWidth, transposed = false } = opts;
  const next = new Set(expanded);
  if (next.has(x)) next.delete(x);
  else next.add(x);
  const after = visibleGraph(index, next, folded);
  const member = planBlocks(index, after, { ...opts, size: boxSize })
    ?.blocks.flatMap((b) => b.members)
    .find((m) => m.id === template);
  if (!member) return null;
  const key = blockKey(member, transposed);
  if (cache.blocks.has(key)) return null;
  return { key, graph: blockGraph(index, after, member, measure, transposed), member, toggle: x };
}

/**
 * Keeps a picture from nextPictures, laid out by ELK, in the cache layoutVisible reads.
 * @param {LayoutCache} cache @param {NextPicture} picture @param {ElkNode} laid ELK's answer for picture.graph
 */
export function keepPicture(cache, picture, laid) {
  keep(cache.blocks, CACHE_MAX, picture.key, relativeLaid(readLayout(laid), picture.member));
}

/**
 * Lays out the visible graph: by blocks where planBlocks finds some, else in one ELK run.
 * With a `cache` (layoutCache(), one per view, for one graph and one text measure), blocks
 * laid out by earlier calls are reused: only new pictures go to ELK, and the outer graph
 * only when it is new and cannot be patched from the last one.
 * @param {(g: ElkNode) => Promise<ElkNode>} layout ELK's layout
 * @param {GraphIndex} index @param {VisGraph} vis
 * @param {{measure?: Measure, transposed?: boolean, minBoxes?: number, cache?: LayoutCache}} [opts]
 * @returns {Promise<Laid & {blocks: number, reused: number, outer: string}>} blocks: how many
 *   blocks; reused: how many of them came from the cache; outer: how the outer graph was laid
 *   out ("elk", "cached", "patched"; "" without blocks)
 */
export async function layoutVisible(layout, index, vis, opts = {}) {
  const { measure, transposed = false, cache } = opts;
  const plan = planBlocks(index, vis, { ...opts, size: boxSize });
  if (!plan)
    return { ...readLayout(await layout(toElk(index, vis, { measure, transposed }))), blocks: 0, reused: 0, outer: "" };
  /** @type {BlockLaid[]} */
  const laids = [];
  let reused = 0;
  for (const b of plan.blocks) {
    const key = blockKey(b.template, transposed);
    let rel = cache?.blocks.get(key);
    if (rel) reused++;
    else {
      const g = blockGraph(index, vis, b.template, measure ?? estimateWidth, transposed);
      rel = relativeLaid(readLayout(await layout(g)), b.template);
      if (cache) keep(cache.blocks, CACHE_MAX, key, rel);
    }
    // a container is never narrower than its header (ELK's minimum size is not read on a root)
    const v = /** @type {VisNode} */ (vis.byId.get(b.template.id));
    const min = boxSize(index, v, measure);
    laids.push({ ...rel, width: Math.max(rel.width, min.width), height: Math.max(rel.height, min.height) });
  }
  // the outer graph, members still at their closed size; an edge's id names its visible ends,
  // which change inside a member when a box there opens: edges are matched by their order
  const structure = `${transposed}\n${JSON.stringify(plan.outer, withoutEdgeIds)}`;
  const edges = edgeIds(plan.outer);
  sizeMembers(plan, laids);
  /** @type {Map<string, Rect>} */
  const sizes = new Map();
  plan.blocks.forEach((b, i) => {
    for (const m of b.members) sizes.set(m.id, { x: 0, y: 0, width: laids[i].width, height: laids[i].height });
  });
  const full = `${structure}\n${[...sizes.values()].map((r) => `${r.width}x${r.height}`).join(",")}`;
  let how = "cached";
  const hit = cache?.outers.get(full);
  /** @type {Laid | null} */
  let outer = hit ? renameEdges(hit.laid, hit.edges, edges) : null;
  if (!outer && cache?.patch && cache.last?.structure === structure) {
    const last = renameEdges(cache.last.laid, cache.last.edges, edges);
    outer = patchOuter(last, cache.last.sizes, sizes, plan.outer);
    how = "patched";
  }
  if (!outer) {
    outer = readLayout(await layout(plan.outer));
    how = "elk";
    if (cache) keep(cache.outers, OUTERS_MAX, full, { laid: outer, edges });
  }
  if (cache) cache.last = { structure, sizes, laid: outer, edges };
  return { ...assemble(plan, outer, laids), blocks: plan.blocks.length, reused, outer: how };
}

/**
 * JSON.stringify's replacer that leaves edges' ids out.
 * @this {any} @param {string} key @param {any} value
 */
function withoutEdgeIds(key, value) {
  return key === "id" && this.sources ? undefined : value;
}

/** The ids of an ELK graph's edges, in a fixed order. @param {ElkNode} g @returns {string[]} */
function edgeIds(g) {
  /** @type {string[]} */
  const out = [];
  /** @param {ElkNode} n */
  const walk = (n) => {
    for (const e of /** @type {any[]} */ (n.edges || [])) out.push(e.id);
    for (const c of n.children || []) walk(c);
  };
  walk(g);
  return out;
}

/**
 * A layout whose routes are keyed by other edge ids (the same edges, in the same order).
 * @param {Laid} laid @param {string[]} from @param {string[]} to
 * @returns {Laid}
 */
function renameEdges(laid, from, to) {
  if (from.length !== to.length) return laid;
  if (from.every((id, i) => id === to[i])) return laid;
  const paths = new Map();
  from.forEach((id, i) => {
    const p = laid.paths.get(id);
    if (p) paths.set(to[i], p);
  });
  return { ...laid, paths };
}

/**
 * The last outer layout with some members resized, without ELK: each resized member keeps
 * its top-left corner, everything that was below its bottom moves by its change in height,
 * and the containers around it grow or shrink with it. Null when that could be wrong: a
 * box beside the member that reaches below its new bottom, a box or edge the member's new
 * extent would cover, an edge bending beside a member that shrinks, or a container it
 * would outgrow (ELK lays out again then).
 * @param {Laid} laid the last outer layout @param {Map<string, Rect>} before members' sizes in it
 * @param {Map<string, Rect>} after members' sizes now (same members)
 * @param {ElkNode} graph the outer ELK graph (for containers and edges' ends)
 * @returns {Laid | null}
 */
export function patchOuter(laid, before, after, graph) {
  /** @type {Map<string, string>} */
  const parent = new Map();
  /** @type {Map<string, string[]>} */
  const ends = new Map();
  /** @param {ElkNode} n */
  const walk = (n) => {
    for (const c of n.children || []) {
      parent.set(c.id, n.id);
      walk(c);
    }
    for (const e of /** @type {any[]} */ (n.edges || [])) ends.set(e.id, [...e.sources, ...e.targets]);
  };
  walk(graph);
  const boxes = new Map(laid.boxes);
  let paths = laid.paths;
  let { width, height } = laid;
  const changed = [...after.keys()].filter((id) => {
    const a = after.get(id);
    const b = before.get(id);
    return !b || !a || a.width !== b.width || a.height !== b.height;
  });
  if (changed.some((id) => !before.has(id) || !boxes.has(id))) return null;
  // bottom-most first: moving an upper member then moves the lower ones already patched
  changed.sort((a, b) => /** @type {Rect} */ (boxes.get(b)).y - /** @type {Rect} */ (boxes.get(a)).y);
  const EPS = 0.5;
  for (const id of changed) {
    const r = /** @type {Rect} */ (boxes.get(id));
    const size = /** @type {Rect} */ (after.get(id));
    const dh = size.height - r.height;
    const bottom = r.y + r.height;
    const next = { x: r.x, y: r.y, width: size.width, height: size.height };
    /** @type {Set<string>} */
    const around = new Set();
    for (let p = parent.get(id); p != null && boxes.has(p); p = parent.get(p)) around.add(p);
    /** @param {Rect} a @param {Rect} b */
    const meets = (a, b) =>
      a.x < b.x + b.width + EPS &&
      b.x < a.x + a.width + EPS &&
      a.y < b.y + b.height + EPS &&
      b.y < a.y + a.height + EPS;
    /** @type {Map<string, Rect>} */
    const moved = new Map();
    for (const [bid, b] of boxes) {
      if (bid === id) continue;
      if (around.has(bid)) {
        // a container around it: grows with it, and must still hold it
        if (b.x + b.width < next.x + next.width + BOX.inset - EPS) return null;
        moved.set(bid, { ...b, height: b.height + dh });
      } else if (b.y >= bottom - EPS) moved.set(bid, { ...b, y: b.y + dh });
      else if (b.y + b.height > Math.min(bottom, bottom + dh) + EPS || meets(b, next)) return null;
    }
    /** @param {number[]} p */
    const shift = (p) => (p[1] >= bottom - EPS ? [p[0], p[1] + dh] : p);
    /** @type {Map<string, number[][]>} */
    const nextPaths = new Map();
    for (const [eid, pts] of paths) {
      const q = pts.map(shift);
      const [s, t] = ends.get(eid) ?? [];
      // an edge into (out of) the member ends on the line of its top (bottom) border, maybe
      // beyond its new width: assemble's join jogs to the port just outside the border
      if (t !== id && s !== id) {
        for (let i = 1; i < q.length; i++) if (crosses(q[i - 1], q[i], next)) return null;
        // a bend beside a shrinking member, where what was below it comes up to
        if (dh < 0 && pts.some((p) => p[1] > bottom + dh + EPS && p[1] < bottom - EPS)) return null;
      }
      nextPaths.set(eid, q);
    }
    for (const [bid, b] of moved) boxes.set(bid, b);
    boxes.set(id, next);
    paths = nextPaths;
    height += dh;
    width = Math.max(width, next.x + next.width + BOX.inset);
  }
  return { boxes, paths, labels: laid.labels, width, height };
}

/**
 * Whether an axis-parallel segment passes through the inside of a rectangle.
 * @param {number[]} a @param {number[]} b @param {Rect} r
 */
function crosses(a, b, r) {
  const x0 = Math.min(a[0], b[0]);
  const x1 = Math.max(a[0], b[0]);
  const y0 = Math.min(a[1], b[1]);
  const y1 = Math.max(a[1], b[1]);
  return x1 > r.x && x0 < r.x + r.width && y1 > r.y && y0 < r.y + r.height;
}

/**
 * Sets each stamped member's box in the outer graph to its block's laid-out size.
 * @param {BlockPlan} plan @param {{width: number, height: number}[]} blockLaids one per plan.blocks
 */
export function sizeMembers(plan, blockLaids) {
  /** @type {Map<string, {width: number, height: number}>} */
  const sizes = new Map();
  plan.blocks.forEach((b, i) => {
    for (const m of b.members) sizes.set(m.id, { width: blockLaids[i].width, height: blockLaids[i].height });
  });
  /** @param {ElkNode} n */
  const walk = (n) => {
    for (const c of n.children || []) {
      const s = sizes.get(c.id);
      if (s) {
        c.width = s.width;
        c.height = s.height;
      }
      walk(c);
    }
  };
  walk(plan.outer);
}

/**
 * The whole picture: the outer layout, each block stamped into its members, and the
 * edges in and out of members joined (a short jog just outside the member's border).
 * @param {BlockPlan} plan @param {Laid} outer readLayout of the laid-out plan.outer
 * @param {BlockLaid[]} blockLaids each block's layout (relativeLaid)
 * @returns {Laid}
 */
export function assemble(plan, outer, blockLaids) {
  const boxes = new Map(outer.boxes);
  const paths = new Map(outer.paths);
  plan.blocks.forEach((b, bi) => {
    const laid = blockLaids[bi];
    for (const m of b.members) {
      const at = /** @type {Rect} */ (outer.boxes.get(m.id));
      const dx = at.x;
      const dy = at.y;
      /** @param {number[][]} p */
      const move = (p) => p.map(([x, y]) => [x + dx, y + dy]);
      m.inside.forEach((x, i) => {
        const r = laid.boxes[i];
        boxes.set(x, { ...r, x: r.x + dx, y: r.y + dy });
      });
      m.internal.forEach((e, i) => {
        paths.set(e.id, move(laid.internal[i]));
      });
      m.into.forEach((e, i) => {
        const inner = move(laid.ins[m.inPort[i]] || []);
        const route = paths.get(e.id) || [];
        if (!inner.length || !route.length) return;
        paths.set(e.id, joinIn(route, inner, at.y));
      });
      m.out.forEach((e, i) => {
        const inner = move(laid.outs[m.outPort[i]] || []);
        const route = paths.get(e.id) || [];
        if (!inner.length || !route.length) return;
        paths.set(e.id, joinOut(inner, route, at.y + at.height));
      });
    }
  });
  return { boxes, paths, labels: outer.labels, width: outer.width, height: outer.height };
}

/**
 * An outer route ending on a member's top border, then the inner route from its port.
 * @param {number[][]} route @param {number[][]} inner @param {number} top
 */
export function joinIn(route, inner, top) {
  const end = route[route.length - 1];
  const before = route.length > 1 ? route[route.length - 2] : [end[0], top - 16];
  const g = Math.max(1, Math.min(8, (end[1] - before[1]) / 2));
  const y = Math.min(end[1], top) - g;
  const [px] = inner[0];
  return [...route.slice(0, -1), [end[0], y], [px, y], ...inner.slice(1)];
}

/**
 * The inner route to a member's bottom port, then the outer route from its bottom border.
 * @param {number[][]} inner @param {number[][]} route @param {number} bottom
 */
export function joinOut(inner, route, bottom) {
  const start = route[0];
  const after = route.length > 1 ? route[1] : [start[0], bottom + 16];
  const g = Math.max(1, Math.min(8, (after[1] - start[1]) / 2));
  const y = Math.max(start[1], bottom) + g;
  const [px] = inner[inner.length - 1];
  return [...inner.slice(0, -1), [px, y], [start[0], y], ...route.slice(1)];
}
