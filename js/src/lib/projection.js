// @ts-check
// UMAP (umap-js) and t-SNE (lib/tsne.js, Barnes-Hut) of one frame's vectors in 2-D or 3-D,
// a few steps at a time, for the projector's web worker (lib/projection-worker.js). No DOM
// and no worker here: node's tests run it as it is.
//
// What it guarantees:
// - reproducible: UMAP draws from a seeded generator, t-SNE draws nothing, and both start
//   from the layout they are given (the frame's PCA, or a neighbouring frame's layout of
//   the same method), so the same inputs give the same layout;
// - continuity: a frame started from its neighbour's layout keeps its arrangement (UMAP
//   at a lower learning rate, t-SNE without early exaggeration), and every layout handed
//   out is turned, mirrored and shifted onto its start (`procrustes`, no scaling: layouts
//   stay in the method's own units), so points move instead of jumping;
// - cancellable: `runProjection` yields between slices of steps and stops at an aborted
//   signal (the heavy preparation, the neighbour search, is one call: terminating the
//   worker is what stops that).
import { UMAP } from "umap-js";
import { CONTINUE_STEPS, createTSNE, STEPS } from "./tsne.js";

/** t-SNE iterations from a PCA start (the first 250 with P exaggerated 12 times) ... */
export const TSNE_STEPS = STEPS;
/** ... and from another frame's layout (no exaggeration: the clusters are formed). */
export const TSNE_CONTINUE_STEPS = CONTINUE_STEPS;
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
 * The singular value decomposition of a small d x d matrix (row-major) by one-sided
 * Jacobi rotations: M = U diag(s) V^T, U and V orthogonal (U completed to a basis where
 * M is singular), s >= 0 unsorted.
 * @param {ArrayLike<number>} M
 * @param {number} d
 * @returns {{U: Float64Array, s: Float64Array, V: Float64Array}}
 */
export function svd(M, d) {
  const A = Float64Array.from(M);
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) V[i * d + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let turned = false;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let r = 0; r < d; r++) {
          alpha += A[r * d + p] ** 2;
          beta += A[r * d + q] ** 2;
          gamma += A[r * d + p] * A[r * d + q];
        }
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        turned = true;
        // the rotation that makes columns p and q orthogonal
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const sn = c * t;
        for (const X of [A, V]) {
          for (let r = 0; r < d; r++) {
            const xp = X[r * d + p];
            const xq = X[r * d + q];
            X[r * d + p] = c * xp - sn * xq;
            X[r * d + q] = sn * xp + c * xq;
          }
        }
      }
    }
    if (!turned) break;
  }
  // A = M V = U diag(s): s the columns' lengths
  const s = new Float64Array(d);
  const U = new Float64Array(d * d);
  let big = 0;
  for (let j = 0; j < d; j++) {
    let norm = 0;
    for (let r = 0; r < d; r++) norm += A[r * d + j] ** 2;
    s[j] = Math.sqrt(norm);
    big = Math.max(big, s[j]);
  }
  const tiny = big * 1e-12;
  /** @type {number[]} */
  const missing = [];
  for (let j = 0; j < d; j++) {
    if (s[j] > tiny && s[j] > 0) for (let r = 0; r < d; r++) U[r * d + j] = A[r * d + j] / s[j];
    else missing.push(j);
  }
  // singular: the columns left are an orthonormal completion (Gram-Schmidt on the axes)
  for (let e = 0; e < d && missing.length > 0; e++) {
    const v = new Float64Array(d);
    v[e] = 1;
    for (let j = 0; j < d; j++) {
      if (missing.includes(j)) continue;
      let dot = 0;
      for (let r = 0; r < d; r++) dot += U[r * d + j] * v[r];
      for (let r = 0; r < d; r++) v[r] -= dot * U[r * d + j];
    }
    const norm = Math.hypot(...v);
    if (norm < 1e-6) continue;
    const j = /** @type {number} */ (missing.shift());
    for (let r = 0; r < d; r++) U[r * d + j] = v[r] / norm;
  }
  return { U, s, V };
}

/** @param {Float64Array} M d x d @param {number} d */
function det(M, d) {
  const A = Float64Array.from(M);
  let out = 1;
  for (let c = 0; c < d; c++) {
    let pivot = c;
    for (let r = c + 1; r < d; r++) if (Math.abs(A[r * d + c]) > Math.abs(A[pivot * d + c])) pivot = r;
    if (A[pivot * d + c] === 0) return 0;
    if (pivot !== c) {
      out = -out;
      for (let k = 0; k < d; k++) [A[c * d + k], A[pivot * d + k]] = [A[pivot * d + k], A[c * d + k]];
    }
    out *= A[c * d + c];
    for (let r = c + 1; r < d; r++) {
      const f = A[r * d + c] / A[c * d + c];
      for (let k = c; k < d; k++) A[r * d + k] -= f * A[c * d + k];
    }
  }
  return out;
}

/**
 * `cur` (n x dims, flat) moved to best match `ref` (n x dims, flat; row i is the same
 * item in both): rotated or reflected, scaled (`scale`) and shifted, fitted on the rows
 * finite in both; every row of `cur` is transformed. The least-squares solution (as
 * nbviz.projector.procrustes_align): with B0^T A0 = U S V^T (the centred rows), the
 * rotation U V^T, or U diag(1, .., 1, -1) V^T when reflections are refused and U V^T is
 * one. Without two common rows, `cur` as it is.
 * @param {ArrayLike<number>} ref
 * @param {ArrayLike<number>} cur
 * @param {{dims?: number, scale?: boolean, reflection?: boolean}} [options]
 * @returns {Float32Array}
 */
export function procrustes(ref, cur, { dims = 2, scale = true, reflection = true } = {}) {
  const d = dims;
  const n = Math.floor(cur.length / d);
  const out = Float32Array.from(cur);
  const ok = new Uint8Array(n);
  const a = new Float64Array(d);
  const b = new Float64Array(d);
  let m = 0;
  for (let i = 0; i < n; i++) {
    let finite = true;
    for (let t = 0; t < d; t++) finite &&= Number.isFinite(ref[i * d + t]) && Number.isFinite(cur[i * d + t]);
    if (!finite) continue;
    ok[i] = 1;
    m++;
    for (let t = 0; t < d; t++) {
      a[t] += ref[i * d + t];
      b[t] += cur[i * d + t];
    }
  }
  if (m < 2) return out;
  for (let t = 0; t < d; t++) {
    a[t] /= m;
    b[t] /= m;
  }
  // M = B0^T A0 (d x d) and |B0|^2
  const M = new Float64Array(d * d);
  let norm = 0;
  for (let i = 0; i < n; i++) {
    if (!ok[i]) continue;
    for (let r = 0; r < d; r++) {
      const p = cur[i * d + r] - b[r];
      norm += p * p;
      for (let c = 0; c < d; c++) M[r * d + c] += p * (ref[i * d + c] - a[c]);
    }
  }
  const { U, s, V } = svd(M, d);
  // rotations only: turn the direction of the smallest singular value the other way
  const flip = new Float64Array(d).fill(1);
  if (!reflection && det(U, d) * det(V, d) < 0) {
    let low = 0;
    for (let j = 1; j < d; j++) if (s[j] < s[low]) low = j;
    flip[low] = -1;
  }
  // R = U diag(flip) V^T; a row p becomes k (p - b) R + a
  const R = new Float64Array(d * d);
  let fit = 0;
  for (let j = 0; j < d; j++) fit += flip[j] * s[j];
  for (let r = 0; r < d; r++) {
    for (let c = 0; c < d; c++) {
      let v = 0;
      for (let j = 0; j < d; j++) v += U[r * d + j] * flip[j] * V[c * d + j];
      R[r * d + c] = v;
    }
  }
  const k = scale && norm > 0 ? fit / norm : 1;
  const p = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < d; t++) p[t] = cur[i * d + t] - b[t];
    for (let c = 0; c < d; c++) {
      let v = 0;
      for (let r = 0; r < d; r++) v += p[r] * R[r * d + c];
      out[i * d + c] = v * k + a[c];
    }
  }
  return out;
}

/**
 * `xy` (n x dims, flat) centred and scaled so that its largest |coordinate| is `half`
 * (`std`: so that the standard deviation over all axes is `std` instead).
 * @param {ArrayLike<number>} xy
 * @param {{half?: number, std?: number, dims?: number}} target
 * @returns {Float64Array}
 */
export function rescale(xy, { half, std, dims = 2 }) {
  const d = dims;
  const n = Math.floor(xy.length / d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) mean[t] += xy[i * d + t] / n;
  let big = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < d; t++) {
      const v = xy[i * d + t] - mean[t];
      big = Math.max(big, Math.abs(v));
      sq += v * v;
    }
  }
  const spread = std !== undefined ? Math.sqrt(sq / (d * (n || 1))) : big;
  const want = std !== undefined ? std : (half ?? 1);
  const k = spread > 0 ? want / spread : 1;
  const out = new Float64Array(d * n);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) out[i * d + t] = (xy[i * d + t] - mean[t]) * k;
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
 * @property {2 | 3} [dims]            the layout's dimensions (2)
 * @property {ArrayLike<number>} init  (n, dims) flat: the starting layout (finite)
 * @property {boolean} [continued]     `init` is another frame's layout of this method (not a PCA)
 * @property {number} [seed]
 * @typedef {Object} Projection
 * @property {Method} method
 * @property {2 | 3} dims
 * @property {number} total            steps in all (UMAP epochs, t-SNE iterations)
 * @property {() => number} done       steps taken
 * @property {(count: number) => number} step  takes up to `count` more steps; returns done()
 * @property {() => Float32Array} layout  (n, dims) flat, in the method's units, turned and
 *   shifted onto its start
 */

/**
 * A projection ready to step: the preparation (the neighbours, UMAP's graph, t-SNE's
 * affinities) runs here, in one call.
 * @param {ProjectionSpec} spec
 * @returns {Projection}
 */
export function startProjection(spec) {
  const { method, vectors, n, d, dims = 2, init, continued = false, seed = SEED } = spec;
  if (method !== "umap" && method !== "tsne") throw new Error(`unknown projection ${method}`);
  if (n < 3) throw new Error(`${method === "umap" ? "UMAP" : "t-SNE"} needs at least 3 items, got ${n}`);
  if (dims !== 2 && dims !== 3) throw new Error(`a layout has 2 or 3 dimensions, not ${dims}`);
  if (vectors.length !== n * d || init.length !== dims * n) {
    throw new Error(`expected ${n} vectors of ${d} values and ${n} starting points of ${dims}`);
  }
  // Where the points start, in the method's own units: another frame's layout of this
  // method as it is; a PCA scaled as the method starts (UMAP: in [-10, 10]^dims, umap-js's
  // random start; t-SNE: a spread of 1e-4, as openTSNE's PCA start)
  const start = continued
    ? Float64Array.from(init)
    : rescale(init, method === "umap" ? { half: 10, dims } : { std: 1e-4, dims });
  /** @type {() => ArrayLike<number>} the layout now, (n, dims) flat */
  let current;
  /** @type {(count: number) => void} */
  let steps;
  let total;
  if (method === "umap") {
    // umap-js needs more items than neighbours; with few items, fewer neighbours
    const umap = new UMAP({
      nComponents: dims,
      nNeighbors: Math.min(UMAP_NEIGHBOURS, n - 1),
      random: mulberry32(seed),
      learningRate: continued ? UMAP_CONTINUE_RATE : 1,
    });
    // umap-js also builds a search graph for transform(), which is never called here: not
    // building it saves a fifth of the memory and changes no layout
    /** @type {any} */ (umap).makeSearchGraph = () => null;
    total = umap.initializeFit(rowsOf(vectors, n, d));
    // ours instead of its random start (the optimisation works on these rows themselves)
    const y = umap.getEmbedding();
    for (let i = 0; i < n; i++) for (let t = 0; t < dims; t++) y[i][t] = start[i * dims + t];
    const flat = new Float64Array(dims * n);
    current = () => {
      for (let i = 0; i < n; i++) for (let t = 0; t < dims; t++) flat[i * dims + t] = y[i][t];
      return flat;
    };
    steps = (count) => {
      for (let k = 0; k < count; k++) umap.step();
    };
  } else {
    const tsne = createTSNE({ vectors, n, d, dims, init: start, continued });
    total = tsne.total;
    current = () => tsne.y;
    steps = (count) => tsne.step(count);
  }
  let done = 0;
  return {
    method,
    dims,
    total,
    done: () => done,
    step(count) {
      const k = Math.max(0, Math.min(count, total - done));
      steps(k);
      done += k;
      return done;
    },
    layout: () => procrustes(start, current(), { dims, scale: false }),
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
