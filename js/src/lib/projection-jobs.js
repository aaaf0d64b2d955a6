// @ts-check
// The projector's UMAP and t-SNE layouts on the page's side (js/src/projector.js): which
// items and vectors a frame's job gets and what it starts from, one worker at a time, and a
// cache per (method, dims, frame) so that a frame seen once comes back at once. Layouts
// are 2-D or 3-D: flat arrays of `dims` values per item. The steps run
// in a worker (lib/projection-worker.js); the worker is made by the function given (a
// Worker in the page, a fake in node's tests), so nothing here needs a page.
import { plural } from "./text.js";

/** The projections the view offers: [value, label]. PCA is the kernel's. */
export const METHODS = /** @type {const} */ ([
  ["pca", "PCA"],
  ["umap", "UMAP"],
  ["tsne", "t-SNE"],
]);

/** The most items t-SNE takes, the first of the kernel's sample (itself a uniform random
 * order): Barnes-Hut t-SNE (lib/tsne.js) of 10,000 items of 50 dims takes about 20 s in
 * 2-D and 40 s in 3-D in a worker on one core of a 2-core server (a frame started from
 * another's layout: about 8 s and 14 s). */
export const TSNE_MAX = 10_000;

/**
 * What the kernel sent for these methods, decoded: `sample` (S,) item numbers in a
 * fixed random order, `vectors` (F, S, d) flat, NaN rows for items left out of a frame;
 * `coords` (F, N, 2) flat, the PCA of each frame; `coords3` (F, N, 3) flat, its first
 * three components (3-D layouts start there; without it, from the vectors' first three
 * values: the sample's PCA when the layer has more than 50 dims, else its first axes).
 * @typedef {{n: number, frames: number, sample: ArrayLike<number> | null,
 *   vectors: {data: ArrayLike<number>, shape: number[]} | null, coords: ArrayLike<number> | null,
 *   coords3?: ArrayLike<number> | null}} ProjectionData
 * @typedef {"umap" | "tsne"} Method
 * @typedef {2 | 3} Dims
 * @typedef {{items: Int32Array, coords: Float32Array, dims?: Dims, steps: number, from: number | null}} Layout
 *   item numbers, their (m, dims) positions, the steps that made them and the frame whose
 *   layout they started from (null: the PCA)
 * @typedef {Object} JobView
 * @property {Method} method
 * @property {Dims} dims
 * @property {number} frame
 * @property {"running" | "done" | "error"} state
 * @property {"prepare" | "optimise" | "done"} phase
 * @property {number} done     steps taken
 * @property {number} total    steps in all (0 while preparing)
 * @property {Int32Array} items
 * @property {Float32Array} coords  (m, dims): the layout so far (its start until the first steps)
 * @property {string} message  what went wrong (state "error")
 * @property {number | null} from  the frame whose layout it started from (null: the PCA)
 */

/** The cache's key of a layout. @param {string} method @param {number} frame @param {number} [dims] */
export const keyOf = (method, frame, dims = 2) => `${method}:${dims}:${frame}`;

/**
 * The items a method projects: the first `TSNE_MAX` of the sample for t-SNE, all of it
 * for UMAP.
 * @param {Method} method
 * @param {number} sampled
 */
export function itemsFor(method, sampled) {
  return method === "tsne" ? Math.min(sampled, TSNE_MAX) : sampled;
}

/**
 * The frame nearest `frame` with a layout of `method` in `dims` in `cache`: the previous
 * frames first at equal distance; null when there is none.
 * @param {Map<string, Layout>} cache
 * @param {string} method
 * @param {number} frame
 * @param {number} frames
 * @param {Dims} [dims]
 */
export function nearestLayout(cache, method, frame, frames, dims = 2) {
  for (let dist = 1; dist < frames; dist++) {
    if (frame - dist >= 0 && cache.has(keyOf(method, frame - dist, dims))) return frame - dist;
    if (frame + dist < frames && cache.has(keyOf(method, frame + dist, dims))) return frame + dist;
  }
  return null;
}

/**
 * A job's inputs: the sampled items kept in `frame` (finite vector and PCA), their
 * vectors, and where they start: the nearest frame's layout of the same method and dims
 * (items it lacks at its centroid), else the frame's PCA (`coords`, or `coords3` in 3-D;
 * without `coords3`, the vectors' first three values, zeros past the last). Null when
 * fewer than 3 items are left.
 * @param {Method} method
 * @param {number} frame
 * @param {ProjectionData} data
 * @param {Map<string, Layout>} cache
 * @param {Dims} [dims]
 * @returns {{items: Int32Array, vectors: Float32Array, d: number, init: Float32Array, from: number | null} | null}
 */
export function jobInputs(method, frame, data, cache, dims = 2) {
  const { n, sample, vectors } = data;
  const pca = dims === 3 ? (data.coords3 ?? null) : data.coords;
  if (!sample || !vectors || (dims === 2 && !pca)) return null;
  const [, s, d] = vectors.shape;
  const count = itemsFor(method, s);
  /** @type {number[]} */
  const items = [];
  /** @type {number[]} */
  const rows = [];
  for (let j = 0; j < count; j++) {
    const item = sample[j];
    if (!Number.isFinite(vectors.data[(frame * s + j) * d])) continue;
    if (pca) {
      let finite = true;
      for (let t = 0; t < dims; t++) finite &&= Number.isFinite(pca[(frame * n + item) * dims + t]);
      if (!finite) continue;
    }
    items.push(item);
    rows.push(j);
  }
  const m = items.length;
  if (m < 3) return null;
  const vec = new Float32Array(m * d);
  for (let i = 0; i < m; i++) {
    const off = (frame * s + rows[i]) * d;
    for (let k = 0; k < d; k++) vec[i * d + k] = vectors.data[off + k];
  }
  const init = new Float32Array(dims * m);
  const from = nearestLayout(cache, method, frame, data.frames, dims);
  const ref = from === null ? undefined : cache.get(keyOf(method, from, dims));
  if (ref) {
    const at = fullCoords(n, ref.items, ref.coords, dims);
    const centre = new Float64Array(dims);
    for (let i = 0; i < ref.items.length; i++) {
      for (let t = 0; t < dims; t++) centre[t] += ref.coords[dims * i + t] / ref.items.length;
    }
    for (let i = 0; i < m; i++) {
      let known = true;
      for (let t = 0; t < dims; t++) known &&= Number.isFinite(at[dims * items[i] + t]);
      for (let t = 0; t < dims; t++) init[dims * i + t] = known ? at[dims * items[i] + t] : centre[t];
    }
  } else if (pca) {
    for (let i = 0; i < m; i++) {
      for (let t = 0; t < dims; t++) init[dims * i + t] = pca[(frame * n + items[i]) * dims + t];
    }
  } else {
    for (let i = 0; i < m; i++) for (let t = 0; t < Math.min(dims, d); t++) init[dims * i + t] = vec[i * d + t];
  }
  return { items: Int32Array.from(items), vectors: vec, d, init, from: ref ? from : null };
}

/**
 * A layout as (N, dims) coordinates, NaN for the items it lacks (frameXY's input).
 * @param {number} n
 * @param {ArrayLike<number>} items
 * @param {ArrayLike<number>} coords (m, dims) flat
 * @param {Dims} [dims]
 */
export function fullCoords(n, items, coords, dims = 2) {
  const out = new Float32Array(dims * n).fill(Number.NaN);
  for (let i = 0; i < items.length; i++) {
    for (let t = 0; t < dims; t++) out[dims * items[i] + t] = coords[dims * i + t];
  }
  return out;
}

/**
 * Whether two samples hold the same items in the same order (null: none).
 * @param {ArrayLike<number> | null} a
 * @param {ArrayLike<number> | null} b
 */
export function sameItems(a, b) {
  if (!a || !b) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A line for the view: "UMAP 120/500 epochs (2,000 items)", "t-SNE of 2,000 items, a
 * uniform sample of 10,000, from frame 2's layout", "UMAP failed: ..."; "3-D UMAP ..." for
 * a 3-D layout.
 * @param {JobView} job
 * @param {number} n  items in the data set
 */
export function describeJob(job, n) {
  const name = `${job.dims === 3 ? "3-D " : ""}${job.method === "umap" ? "UMAP" : "t-SNE"}`;
  const unit = job.method === "umap" ? "epochs" : "iterations";
  if (job.state === "error") return `${name} failed: ${job.message}`;
  const sample = job.items.length < n ? `, a uniform sample of ${n.toLocaleString("en-US")}` : "";
  const of = `${plural(job.items.length, "item")}${sample}`;
  const start = job.from === null ? "" : `, from frame ${job.from + 1}'s layout`;
  if (job.state === "done") return `${name} of ${of}${start}`;
  if (job.phase === "prepare") {
    return `${name}: ${job.method === "umap" ? "nearest neighbours" : "affinities"} of ${of}${start}…`;
  }
  return `${name} ${job.done}/${job.total} ${unit} (${of}${start})`;
}

/**
 * UMAP and t-SNE layouts for the view: `view(method, frame, data, dims)` returns the layout
 * to draw (cached, or the running job's so far) and starts a job when there is none, ending
 * the one that runs for another (method, dims, frame). `onChange` is called on every message
 * from the worker, with `true` when there is something new to draw (a layout, the end)
 * and `false` for progress alone.
 * @param {() => {postMessage: (m: any, t?: Transferable[]) => void, terminate: () => void,
 *   onmessage: ((e: MessageEvent) => void) | null, onerror: ((e: any) => void) | null}} makeWorker
 * @param {(redraw: boolean) => void} onChange
 */
export function createProjections(makeWorker, onChange) {
  /** @type {Map<string, Layout>} */
  const cache = new Map();
  /** @type {{key: string, id: number, worker: ReturnType<typeof makeWorker> | null, view: JobView} | null} */
  let job = null;
  let seq = 0;

  function cancel() {
    job?.worker?.terminate();
    job = null;
  }

  /**
   * @param {string} method
   * @param {number} frame
   * @param {ProjectionData} data
   * @param {Dims} [dims]
   * @returns {JobView | null} null for the PCA (the kernel's)
   */
  function view(method, frame, data, dims = 2) {
    if (method !== "umap" && method !== "tsne") {
      cancel();
      return null;
    }
    const key = keyOf(method, frame, dims);
    const cached = cache.get(key);
    if (cached) {
      if (job?.key !== key) cancel();
      /** @type {JobView} */
      const done = {
        method,
        dims,
        frame,
        state: "done",
        phase: "done",
        done: cached.steps,
        total: cached.steps,
        items: cached.items,
        coords: cached.coords,
        message: "",
        from: cached.from,
      };
      return job?.key === key ? job.view : done;
    }
    if (job?.key === key) return job.view;
    cancel();
    const inputs = jobInputs(method, frame, data, cache, dims);
    const id = ++seq;
    /** @type {JobView} */
    const v = {
      method,
      dims,
      frame,
      state: "running",
      phase: "prepare",
      done: 0,
      total: 0,
      items: inputs?.items ?? new Int32Array(0),
      coords: inputs?.init ?? new Float32Array(0),
      message: "",
      from: inputs?.from ?? null,
    };
    job = { key, id, worker: null, view: v };
    if (!inputs) {
      v.state = "error";
      v.message =
        data.sample && data.vectors ? "fewer than 3 items to project in this frame" : "the kernel sent no vectors";
      return v;
    }
    let worker;
    try {
      worker = makeWorker();
    } catch (error) {
      v.state = "error";
      v.message = `this page cannot run a web worker (${/** @type {any} */ (error)?.message ?? error})`;
      return v;
    }
    job.worker = worker;
    const current = job;
    worker.onmessage = (e) => {
      const m = e.data;
      if (job !== current || m?.id !== id) return;
      if (m.type === "progress") {
        v.phase = m.phase;
        v.done = m.done;
        v.total = m.total;
        if (m.layout) v.coords = m.layout;
        onChange(Boolean(m.layout));
        return;
      } else if (m.type === "done") {
        v.state = "done";
        v.phase = "done";
        v.done = v.total;
        v.coords = m.layout;
        cache.set(key, { items: v.items, coords: v.coords, dims, steps: v.total, from: v.from });
        worker.terminate();
        current.worker = null;
      } else if (m.type === "error") {
        v.state = "error";
        v.message = String(m.message);
        worker.terminate();
        current.worker = null;
      }
      onChange(true);
    };
    worker.onerror = (e) => {
      if (job !== current) return;
      v.state = "error";
      v.message = String(e?.message ?? "the worker stopped");
      worker.terminate();
      current.worker = null;
      onChange(true);
    };
    const spec = {
      method,
      vectors: inputs.vectors,
      n: inputs.items.length,
      d: inputs.d,
      dims,
      init: inputs.init,
      continued: inputs.from !== null,
    };
    worker.postMessage({ type: "run", id, spec }, [inputs.vectors.buffer]);
    return v;
  }

  /**
   * The box around the layouts of `method` in `dims` computed so far and `extra`: one
   * scale for all frames of a method, so moving the slider moves points and rarely
   * rescales. {x0, y0, x1, y1}, and z0, z1 in 3-D.
   * @param {string} method
   * @param {ArrayLike<number>} [extra] (m, dims) flat
   * @param {Dims} [dims]
   * @returns {{x0: number, y0: number, x1: number, y1: number, z0?: number, z1?: number}}
   */
  function box(method, extra, dims = 2) {
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    /** @param {ArrayLike<number>} c */
    const take = (c) => {
      for (let i = 0; i + dims - 1 < c.length; i += dims) {
        let finite = true;
        for (let t = 0; t < dims; t++) finite &&= Number.isFinite(c[i + t]);
        if (!finite) continue;
        for (let t = 0; t < dims; t++) {
          if (c[i + t] < lo[t]) lo[t] = c[i + t];
          if (c[i + t] > hi[t]) hi[t] = c[i + t];
        }
      }
    };
    const prefix = `${method}:${dims}:`;
    for (const [key, layout] of cache) if (key.startsWith(prefix)) take(layout.coords);
    if (extra) take(extra);
    const empty = lo[0] > hi[0];
    const out = empty ? { x0: -1, y0: -1, x1: 1, y1: 1 } : { x0: lo[0], y0: lo[1], x1: hi[0], y1: hi[1] };
    return dims === 3 ? { ...out, z0: empty ? -1 : lo[2], z1: empty ? 1 : hi[2] } : out;
  }

  return {
    view,
    box,
    cancel,
    /** Forgets every layout (a new sample) and ends the job. */
    reset() {
      cancel();
      cache.clear();
    },
    /** @param {string} method @param {number} frame @param {Dims} [dims] */
    has: (method, frame, dims = 2) => cache.has(keyOf(method, frame, dims)),
  };
}
