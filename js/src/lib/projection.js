// @ts-check
// UMAP (umap-js) and t-SNE (@keckelt/tsne) of one frame's vectors, a few steps at a time,
// for the projector's web worker (lib/projection-worker.js). No DOM and no worker here:
// node's tests run it as it is.
//
// What it guarantees:
// - reproducible: UMAP draws from a seeded generator and both start from the layout they
//   are given (the frame's PCA, or a neighbouring frame's layout of the same method), so
//   the same inputs give the same layout;
// - continuity: a frame started from its neighbour's layout keeps its arrangement (UMAP
//   at a lower learning rate, t-SNE without early exaggeration), and every layout handed
//   out is turned, mirrored and shifted onto its start (`procrustes2d`, no scaling:
//   layouts stay in the method's own units), so points move instead of jumping;
// - cancellable: `runProjection` yields between slices of steps and stops at an aborted
//   signal (the heavy preparation, UMAP's neighbour search, is one call: terminating the
//   worker is what stops that).
import { TSNE } from "@keckelt/tsne";
import { UMAP } from "umap-js";

/** t-SNE steps from a PCA start (the first 100 with P exaggerated 4 times) ... */
export const TSNE_STEPS = 500;
/** ... and from another frame's layout (no exaggeration: the clusters are formed). */
export const TSNE_CONTINUE_STEPS = 300;
const TSNE_EXAGGERATED = 100;
/** UMAP's nearest neighbours (umap-js's default, as umap-learn's). */
export const UMAP_NEIGHBOURS = 15;
/** UMAP's first learning rate from another frame's layout (1 from a PCA): a formed layout
 * is refined, not rebuilt, so points move less between frames. */
export const UMAP_CONTINUE_RATE = 0.25;
export const SEED = 20260916;

/**
 * A seeded uniform generator on [0, 1) (mulberry32).
 * @param {number} seed
 * @returns {() => number}
 */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `cur` (n x 2, flat) moved to best match `ref` (n x 2, flat; row i is the same item in
 * both): rotated or reflected, scaled (`scale`) and shifted, fitted on the rows finite in
 * both; every row of `cur` is transformed. The least-squares solution (as
 * nbviz.projector.procrustes_align for 2-D). Without two common rows, `cur` as it is.
 * @param {ArrayLike<number>} ref
 * @param {ArrayLike<number>} cur
 * @param {{scale?: boolean, reflection?: boolean}} [options]
 * @returns {Float32Array}
 */
export function procrustes2d(ref, cur, { scale = true, reflection = true } = {}) {
  const n = Math.floor(cur.length / 2);
  const out = Float32Array.from(cur);
  let m = 0;
  let ax = 0;
  let ay = 0;
  let bx = 0;
  let by = 0;
  const ok = (/** @type {number} */ i) =>
    Number.isFinite(ref[2 * i]) &&
    Number.isFinite(ref[2 * i + 1]) &&
    Number.isFinite(cur[2 * i]) &&
    Number.isFinite(cur[2 * i + 1]);
  for (let i = 0; i < n; i++) {
    if (!ok(i)) continue;
    m++;
    ax += ref[2 * i];
    ay += ref[2 * i + 1];
    bx += cur[2 * i];
    by += cur[2 * i + 1];
  }
  if (m < 2) return out;
  ax /= m;
  ay /= m;
  bx /= m;
  by /= m;
  // M = B0^T A0 (2 x 2) and |B0|^2
  let m00 = 0;
  let m01 = 0;
  let m10 = 0;
  let m11 = 0;
  let norm = 0;
  for (let i = 0; i < n; i++) {
    if (!ok(i)) continue;
    const px = cur[2 * i] - bx;
    const py = cur[2 * i + 1] - by;
    const qx = ref[2 * i] - ax;
    const qy = ref[2 * i + 1] - ay;
    m00 += px * qx;
    m01 += px * qy;
    m10 += py * qx;
    m11 += py * qy;
    norm += px * px + py * py;
  }
  // The best rotation R = [[c, s], [-s, c]] maximises trace(R^T M): angle of
  // (m00 + m11, m01 - m10); the best reflection [[c, s], [s, -c]]: of (m00 - m11, m01 + m10).
  const rot = Math.hypot(m00 + m11, m01 - m10);
  const ref_ = Math.hypot(m00 - m11, m01 + m10);
  const mirror = reflection && ref_ > rot;
  const theta = mirror ? Math.atan2(m01 + m10, m00 - m11) : Math.atan2(m01 - m10, m00 + m11);
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  const k = scale && norm > 0 ? (mirror ? ref_ : rot) / norm : 1;
  // row p = (px, py) becomes p R: rotation (px c - py s, px s + py c); reflection
  // (px c + py s, px s - py c)
  for (let i = 0; i < n; i++) {
    const px = cur[2 * i] - bx;
    const py = cur[2 * i + 1] - by;
    const x = mirror ? px * c + py * s : px * c - py * s;
    const y = mirror ? px * s - py * c : px * s + py * c;
    out[2 * i] = x * k + ax;
    out[2 * i + 1] = y * k + ay;
  }
  return out;
}

/**
 * `xy` (n x 2, flat) centred and scaled so that its largest |coordinate| is `half`
 * (`std`: so that the standard deviation over both axes is `std` instead).
 * @param {ArrayLike<number>} xy
 * @param {{half?: number, std?: number}} target
 * @returns {Float64Array}
 */
export function rescale(xy, { half, std }) {
  const n = Math.floor(xy.length / 2);
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < n; i++) {
    cx += xy[2 * i];
    cy += xy[2 * i + 1];
  }
  cx /= n || 1;
  cy /= n || 1;
  let big = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i] - cx;
    const y = xy[2 * i + 1] - cy;
    big = Math.max(big, Math.abs(x), Math.abs(y));
    sq += x * x + y * y;
  }
  const spread = std !== undefined ? Math.sqrt(sq / (2 * (n || 1))) : big;
  const want = std !== undefined ? std : (half ?? 1);
  const k = spread > 0 ? want / spread : 1;
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = (xy[2 * i] - cx) * k;
    out[2 * i + 1] = (xy[2 * i + 1] - cy) * k;
  }
  return out;
}

/** @param {Float32Array} vectors @param {number} n @param {number} d @returns {number[][]} */
function rowsOf(vectors, n, d) {
  const rows = new Array(n);
  for (let i = 0; i < n; i++) rows[i] = Array.from(vectors.subarray(i * d, (i + 1) * d));
  return rows;
}

/**
 * @typedef {"umap" | "tsne"} Method
 * @typedef {Object} ProjectionSpec
 * @property {Method} method
 * @property {Float32Array} vectors  (n, d) flat: the items' vectors (finite)
 * @property {number} n
 * @property {number} d
 * @property {ArrayLike<number>} init  (n, 2) flat: the starting layout (finite)
 * @property {boolean} [continued]     `init` is another frame's layout of this method (not a PCA)
 * @property {number} [seed]
 * @typedef {Object} Projection
 * @property {Method} method
 * @property {number} total            steps in all (UMAP epochs, t-SNE iterations)
 * @property {() => number} done       steps taken
 * @property {(count: number) => number} step  takes up to `count` more steps; returns done()
 * @property {() => Float32Array} layout  (n, 2) flat, in the method's units, turned and
 *   shifted onto its start
 */

/**
 * A projection ready to step: the preparation (UMAP's neighbour graph, t-SNE's
 * affinities) runs here, in one call.
 * @param {ProjectionSpec} spec
 * @returns {Projection}
 */
export function startProjection(spec) {
  const { method, vectors, n, d, init, continued = false, seed = SEED } = spec;
  if (n < 3) throw new Error(`${method === "umap" ? "UMAP" : "t-SNE"} needs at least 3 items, got ${n}`);
  if (vectors.length !== n * d || init.length !== 2 * n) {
    throw new Error(`expected ${n} vectors of ${d} values and ${n} starting points`);
  }
  const rows = rowsOf(vectors, n, d);
  /** @type {number[][]} */
  let y;
  /** @type {() => void} */
  let one;
  let total;
  // Where the points start, in the method's own units: another frame's layout of this
  // method as it is; a PCA scaled as the method starts (UMAP: in [-10, 10]^2, umap-js's
  // random start; t-SNE: a spread of 1e-4, as openTSNE's PCA start)
  const start = continued ? Float64Array.from(init) : rescale(init, method === "umap" ? { half: 10 } : { std: 1e-4 });
  if (method === "umap") {
    // umap-js needs more items than neighbours; with few items, fewer neighbours
    const umap = new UMAP({
      nComponents: 2,
      nNeighbors: Math.min(UMAP_NEIGHBOURS, n - 1),
      random: mulberry32(seed),
      learningRate: continued ? UMAP_CONTINUE_RATE : 1,
    });
    // umap-js also builds a search graph for transform(), which is never called here: not
    // building it saves a fifth of the memory and changes no layout
    /** @type {any} */ (umap).makeSearchGraph = () => null;
    total = umap.initializeFit(rows);
    // ours instead of its random start (the optimisation works on these rows themselves)
    y = umap.getEmbedding();
    for (let i = 0; i < n; i++) {
      y[i][0] = start[2 * i];
      y[i][1] = start[2 * i + 1];
    }
    one = () => umap.step();
  } else if (method === "tsne") {
    const tsne = new TSNE({ dim: 2, epsilon: 10, perplexity: Math.min(30, Math.max(2, (n - 1) / 3)) });
    tsne.initDataRaw(rows);
    y = tsne.getSolution();
    for (let i = 0; i < n; i++) {
      y[i][0] = start[2 * i];
      y[i][1] = start[2 * i + 1];
    }
    // a layout is formed: no early exaggeration
    if (continued) /** @type {any} */ (tsne).iter = TSNE_EXAGGERATED;
    total = continued ? TSNE_CONTINUE_STEPS : TSNE_STEPS;
    one = () => tsne.step();
  } else {
    throw new Error(`unknown projection ${method}`);
  }
  let done = 0;
  return {
    method,
    total,
    done: () => done,
    step(count) {
      for (let k = 0; k < count && done < total; k++, done++) one();
      return done;
    },
    layout() {
      const flat = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        flat[2 * i] = y[i][0];
        flat[2 * i + 1] = y[i][1];
      }
      return procrustes2d(start, flat, { scale: false });
    },
  };
}

/**
 * @typedef {{phase: "prepare" | "optimise", done: number, total: number, layout?: Float32Array}} Progress
 */

/**
 * Runs a projection to the end in slices of about `sliceMs`, yielding (`pause`) between
 * slices so that messages (a cancel) are handled: `onProgress` hears the phase, the steps
 * done and, at most every `layoutMs`, the layout so far. Resolves to the final layout, or
 * to null when `signal` was aborted.
 * @param {ProjectionSpec} spec
 * @param {{onProgress?: (p: Progress) => void, signal?: AbortSignal, sliceMs?: number,
 *   layoutMs?: number, now?: () => number, pause?: () => Promise<void>}} [options]
 * @returns {Promise<Float32Array | null>}
 */
export async function runProjection(spec, options = {}) {
  const {
    onProgress = () => {},
    signal,
    sliceMs = 50,
    layoutMs = 400,
    now = () => performance.now(),
    pause = () => new Promise((r) => setTimeout(r, 0)),
  } = options;
  onProgress({ phase: "prepare", done: 0, total: 0 });
  await pause();
  if (signal?.aborted) return null;
  const p = startProjection(spec);
  let shown = now();
  onProgress({ phase: "optimise", done: 0, total: p.total, layout: p.layout() });
  while (p.done() < p.total) {
    await pause();
    if (signal?.aborted) return null;
    const t0 = now();
    // at least one step a slice, then as many as fit
    do p.step(1);
    while (p.done() < p.total && now() - t0 < sliceMs);
    const late = now() - shown >= layoutMs;
    if (late) shown = now();
    if (p.done() < p.total) {
      onProgress({ phase: "optimise", done: p.done(), total: p.total, ...(late ? { layout: p.layout() } : {}) });
    }
  }
  return p.layout();
}
