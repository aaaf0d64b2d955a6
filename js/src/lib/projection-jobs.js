// @ts-check
// The projector's UMAP and t-SNE layouts on the page's side (js/src/projector.js): which
// items and vectors a frame's job gets and what it starts from, one worker at a time, and a
// cache per (method, frame) so that a frame seen once comes back at once. The steps run
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
 * order): @keckelt/tsne is exact, O(N^2) per step (2,000 items: about 0.1 s a step). */
export const TSNE_MAX = 2000;

/**
 * What the kernel sent for these methods, decoded: `sample` (S,) item numbers in a
 * fixed random order, `vectors` (F, S, d) flat, NaN rows for items left out of a frame;
 * `coords` (F, N, 2) flat, the PCA of each frame.
 * @typedef {{n: number, frames: number, sample: ArrayLike<number> | null,
 *   vectors: {data: ArrayLike<number>, shape: number[]} | null, coords: ArrayLike<number> | null}} ProjectionData
 * @typedef {"umap" | "tsne"} Method
 * @typedef {{items: Int32Array, coords: Float32Array, steps: number, from: number | null}} Layout
 *   item numbers, their (m, 2) positions, the steps that made them and the frame whose layout
 *   they started from (null: the PCA)
 * @typedef {Object} JobView
 * @property {Method} method
 * @property {number} frame
 * @property {"running" | "done" | "error"} state
 * @property {"prepare" | "optimise" | "done"} phase
 * @property {number} done     steps taken
 * @property {number} total    steps in all (0 while preparing)
 * @property {Int32Array} items
 * @property {Float32Array} coords  the layout so far (its start until the first steps)
 * @property {string} message  what went wrong (state "error")
 * @property {number | null} from  the frame whose layout it started from (null: the PCA)
 */

/** @param {string} method @param {number} frame */
const keyOf = (method, frame) => `${method}:${frame}`;

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
 * The frame nearest `frame` with a layout of `method` in `cache`: the previous frames
 * first at equal distance; null when there is none.
 * @param {Map<string, Layout>} cache
 * @param {string} method
 * @param {number} frame
 * @param {number} frames
 */
export function nearestLayout(cache, method, frame, frames) {
  for (let dist = 1; dist < frames; dist++) {
    if (frame - dist >= 0 && cache.has(keyOf(method, frame - dist))) return frame - dist;
    if (frame + dist < frames && cache.has(keyOf(method, frame + dist))) return frame + dist;
  }
  return null;
}

/**
 * A job's inputs: the sampled items kept in `frame` (finite vector and PCA), their
 * vectors, and where they start: the nearest frame's layout of the same method (items it
 * lacks at its centroid), else the frame's PCA. Null when fewer than 3 items are left.
 * @param {Method} method
 * @param {number} frame
 * @param {ProjectionData} data
 * @param {Map<string, Layout>} cache
 * @returns {{items: Int32Array, vectors: Float32Array, d: number, init: Float32Array, from: number | null} | null}
 */
export function jobInputs(method, frame, data, cache) {
  const { n, sample, vectors, coords } = data;
  if (!sample || !vectors || !coords) return null;
  const [, s, d] = vectors.shape;
  const count = itemsFor(method, s);
  /** @type {number[]} */
  const items = [];
  /** @type {number[]} */
  const rows = [];
  for (let j = 0; j < count; j++) {
    const item = sample[j];
    const at = (frame * n + item) * 2;
    if (!Number.isFinite(vectors.data[(frame * s + j) * d])) continue;
    if (!Number.isFinite(coords[at]) || !Number.isFinite(coords[at + 1])) continue;
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
  const init = new Float32Array(2 * m);
  const from = nearestLayout(cache, method, frame, data.frames);
  const ref = from === null ? undefined : cache.get(keyOf(method, from));
  if (ref) {
    const at = fullCoords(n, ref.items, ref.coords);
    let cx = 0;
    let cy = 0;
    for (let i = 0; i < ref.items.length; i++) {
      cx += ref.coords[2 * i] / ref.items.length;
      cy += ref.coords[2 * i + 1] / ref.items.length;
    }
    for (let i = 0; i < m; i++) {
      const x = at[2 * items[i]];
      const y = at[2 * items[i] + 1];
      const known = Number.isFinite(x) && Number.isFinite(y);
      init[2 * i] = known ? x : cx;
      init[2 * i + 1] = known ? y : cy;
    }
  } else {
    for (let i = 0; i < m; i++) {
      init[2 * i] = coords[(frame * n + items[i]) * 2];
      init[2 * i + 1] = coords[(frame * n + items[i]) * 2 + 1];
    }
  }
  return { items: Int32Array.from(items), vectors: vec, d, init, from: ref ? from : null };
}

/**
 * A layout as (N, 2) coordinates, NaN for the items it lacks (frameXY's input).
 * @param {number} n
 * @param {ArrayLike<number>} items
 * @param {ArrayLike<number>} coords (m, 2) flat
 */
export function fullCoords(n, items, coords) {
  const out = new Float32Array(2 * n).fill(Number.NaN);
  for (let i = 0; i < items.length; i++) {
    out[2 * items[i]] = coords[2 * i];
    out[2 * items[i] + 1] = coords[2 * i + 1];
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
 * uniform sample of 10,000, from frame 2's layout", "UMAP failed: ...".
 * @param {JobView} job
 * @param {number} n  items in the data set
 */
export function describeJob(job, n) {
  const name = job.method === "umap" ? "UMAP" : "t-SNE";
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
 * UMAP and t-SNE layouts for the view: `view(method, frame, data)` returns the layout to
 * draw (cached, or the running job's so far) and starts a job when there is none, ending
 * the one that runs for another (method, frame). `onChange` is called on every message
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
   * @returns {JobView | null} null for the PCA (the kernel's)
   */
  function view(method, frame, data) {
    if (method !== "umap" && method !== "tsne") {
      cancel();
      return null;
    }
    const key = keyOf(method, frame);
    const cached = cache.get(key);
    if (cached) {
      if (job?.key !== key) cancel();
      /** @type {JobView} */
      const done = {
        method,
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
    const inputs = jobInputs(method, frame, data, cache);
    const id = ++seq;
    /** @type {JobView} */
    const v = {
      method,
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
        cache.set(key, { items: v.items, coords: v.coords, steps: v.total, from: v.from });
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
      init: inputs.init,
      continued: inputs.from !== null,
    };
    worker.postMessage({ type: "run", id, spec }, [inputs.vectors.buffer]);
    return v;
  }

  /**
   * The box around the layouts of `method` computed so far and `extra`: one scale for all
   * frames of a method, so moving the slider moves points and rarely rescales.
   * @param {string} method
   * @param {ArrayLike<number>} [extra]
   */
  function box(method, extra) {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    /** @param {ArrayLike<number>} c */
    const take = (c) => {
      for (let i = 0; i + 1 < c.length; i += 2) {
        const x = c[i];
        const y = c[i + 1];
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    };
    for (const [key, layout] of cache) if (key.startsWith(`${method}:`)) take(layout.coords);
    if (extra) take(extra);
    return x0 > x1 ? { x0: -1, y0: -1, x1: 1, y1: 1 } : { x0, y0, x1, y1 };
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
    /** @param {string} method @param {number} frame */
    has: (method, frame) => cache.has(keyOf(method, frame)),
  };
}
