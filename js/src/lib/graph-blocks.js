// @ts-check
// Layout of big graphs by blocks: identical open members of a repeat run (the 32
// decoder layers of an LLM) are laid out once, by ELK on their own, and that block
// layout is stamped into every member; the rest of the graph is laid out with each
// stamped member as one fixed-size box. An edge that enters or leaves a member is
// joined from its outer route and the member's inner route (which starts or ends at
// an invisible point at the block's top or bottom edge). Pure functions, no DOM:
// js/tests/graph-blocks.test.mjs checks that a stamped block equals a fresh layout.
import { BOX, boxSize, readLayout, toElk } from "./graph-view.js";

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
 * @typedef {{template: Member, members: Member[], graph: ElkNode}} Block
 * @typedef {{outer: ElkNode, blocks: Block[]}} BlockPlan
 */

/** Blocks are worth it only from this many visible boxes on. */
export const MIN_BOXES = 300;
const PORT = "__port:";

/**
 * The member's visible subtree, the edges that touch it, and its signature (structure,
 * names, box sizes and edge labels, relative to the member).
 * @param {GraphIndex} index @param {VisGraph} vis @param {string} id @param {Measure} measure
 * @param {Map<string, VisEdge[]>} touching edges by visible end
 * @param {(id: string) => boolean} isInside
 * @param {(index: GraphIndex, v: VisNode, measure: Measure) => {width: number, height: number}} size
 * @returns {Member}
 */
function memberOf(index, vis, id, measure, touching, isInside, size) {
  const inside = vis.nodes.filter((v) => v.id !== id && isInside(v.id)).map((v) => v.id);
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
  for (const e of vis.edges) {
    if (!seen.has(e)) continue;
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
 * whose pictures are the same (outermost runs only). Returns null when nothing is
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
  const chains = new Map(vis.nodes.map((v) => [v.id, chain(v.id)]));
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
    const members = open.map((m) =>
      memberOf(index, vis, m, measure, touching, (x) => (chains.get(x) || []).includes(m), size),
    );
    const template = members[0];
    const same = members.filter((m) => m.signature === template.signature);
    if (same.length < 2 || template.inside.length < 2) continue;
    for (const m of same) stamped.add(m.id);
    blocks.push({ template, members: same, graph: blockGraph(index, vis, template, measure, transposed) });
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
  m.inTargets.forEach((target, i) => {
    const pid = `${PORT}in:${i}`;
    children.push({
      id: pid,
      width: 1,
      height: 1,
      layoutOptions: { "elk.layered.layering.layerConstraint": "FIRST_SEPARATE" },
    });
    gEdges.push({ id: `${PORT}e:in:${i}`, sources: [pid], targets: [target] });
  });
  m.outSources.forEach((source, i) => {
    const pid = `${PORT}out:${i}`;
    children.push({
      id: pid,
      width: 1,
      height: 1,
      layoutOptions: { "elk.layered.layering.layerConstraint": "LAST_SEPARATE" },
    });
    gEdges.push({ id: `${PORT}e:out:${i}`, sources: [source], targets: [pid] });
  });
  return g;
}

/**
 * Lays out the visible graph: by blocks where planBlocks finds some, else in one ELK run.
 * @param {(g: ElkNode) => Promise<ElkNode>} layout ELK's layout
 * @param {GraphIndex} index @param {VisGraph} vis
 * @param {{measure?: Measure, transposed?: boolean, minBoxes?: number}} [opts]
 * @returns {Promise<Laid & {blocks: number}>}
 */
export async function layoutVisible(layout, index, vis, opts = {}) {
  const { measure, transposed = false } = opts;
  const plan = planBlocks(index, vis, { ...opts, size: boxSize });
  if (!plan) return { ...readLayout(await layout(toElk(index, vis, { measure, transposed }))), blocks: 0 };
  /** @type {Laid[]} */
  const laids = [];
  for (const b of plan.blocks) {
    const laid = readLayout(await layout(b.graph));
    // a container is never narrower than its header (ELK's minimum size is not read on a root)
    const v = /** @type {VisNode} */ (vis.byId.get(b.template.id));
    const min = boxSize(index, v, measure);
    laids.push({ ...laid, width: Math.max(laid.width, min.width), height: Math.max(laid.height, min.height) });
  }
  sizeMembers(plan, laids);
  const outer = readLayout(await layout(plan.outer));
  return { ...assemble(plan, outer, laids), blocks: plan.blocks.length };
}

/**
 * Sets each stamped member's box in the outer graph to its block's laid-out size.
 * @param {BlockPlan} plan @param {Laid[]} blockLaids one per plan.blocks
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
 * @param {Laid[]} blockLaids readLayout of each laid-out block graph
 * @returns {Laid}
 */
export function assemble(plan, outer, blockLaids) {
  const boxes = new Map(outer.boxes);
  const paths = new Map(outer.paths);
  plan.blocks.forEach((b, bi) => {
    const laid = blockLaids[bi];
    const t = b.template;
    for (const m of b.members) {
      const at = /** @type {Rect} */ (outer.boxes.get(m.id));
      const dx = at.x;
      const dy = at.y;
      /** @type {Map<string, string>} */
      const map = new Map(t.inside.map((x, i) => [x, m.inside[i]]));
      for (const x of t.inside) {
        const r = laid.boxes.get(x);
        if (r) boxes.set(/** @type {string} */ (map.get(x)), { ...r, x: r.x + dx, y: r.y + dy });
      }
      t.internal.forEach((e, i) => {
        const p = laid.paths.get(e.id);
        if (p)
          paths.set(
            m.internal[i].id,
            p.map(([x, y]) => [x + dx, y + dy]),
          );
      });
      m.into.forEach((e, i) => {
        const inner = (laid.paths.get(`${PORT}e:in:${m.inPort[i]}`) || []).map(([x, y]) => [x + dx, y + dy]);
        const id = e.id;
        const route = paths.get(id) || [];
        if (!inner.length || !route.length) return;
        paths.set(id, joinIn(route, inner, at.y));
      });
      m.out.forEach((e, i) => {
        const inner = (laid.paths.get(`${PORT}e:out:${m.outPort[i]}`) || []).map(([x, y]) => [x + dx, y + dy]);
        const id = e.id;
        const route = paths.get(id) || [];
        if (!inner.length || !route.length) return;
        paths.set(id, joinOut(inner, route, at.y + at.height));
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
