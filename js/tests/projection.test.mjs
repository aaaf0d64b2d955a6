import assert from "node:assert/strict";
import { test } from "node:test";
import {
  mulberry32,
  procrustes,
  rescale,
  runProjection,
  startProjection,
  svd,
  TSNE_CONTINUE_STEPS,
  TSNE_STEPS,
} from "../src/lib/projection.js";
import {
  createProjections,
  describeJob,
  fullCoords,
  itemsFor,
  jobInputs,
  keyOf,
  nearestLayout,
  sameItems,
  TSNE_MAX,
} from "../src/lib/projection-jobs.js";
import { clusters, purity } from "./layouts.mjs";

/** A start that knows nothing of the clusters: the first two coordinates. */
function firstTwo(vectors, n, d) {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = vectors[i * d];
    out[2 * i + 1] = vectors[i * d + 1];
  }
  return out;
}

/** The first `dims` coordinates of each vector. */
function firstOf(vectors, n, d, dims) {
  const out = new Float32Array(dims * n);
  for (let i = 0; i < n; i++) for (let t = 0; t < dims; t++) out[dims * i + t] = vectors[i * d + t];
  return out;
}

/** A 3 x 3 rotation (row-major) from a seeded generator: Gram-Schmidt on random rows. */
function rotation3(seed) {
  const r = mulberry32(seed);
  const rows = [];
  while (rows.length < 3) {
    const v = [r() - 0.5, r() - 0.5, r() - 0.5];
    for (const u of rows) {
      const dot = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
      for (let t = 0; t < 3; t++) v[t] -= dot * u[t];
    }
    const len = Math.hypot(...v);
    rows.push(v.map((x) => x / len));
  }
  // a right-handed frame: the third row is the cross product of the first two
  const [a, b] = rows;
  rows[2] = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  return rows.flat();
}

function meanMove(a, b) {
  let s = 0;
  for (let i = 0; i < a.length / 2; i++) s += Math.hypot(a[2 * i] - b[2 * i], a[2 * i + 1] - b[2 * i + 1]);
  return s / (a.length / 2);
}

function run(spec) {
  const p = startProjection(spec);
  p.step(p.total);
  return p.layout();
}

test("procrustes undoes a rotation or reflection, a scale and a shift", () => {
  const a = [0, 0, 1, 0, 0, 2, 3, 1, Number.NaN, 5];
  for (const mirror of [false, true]) {
    const b = [];
    for (let i = 0; i < 5; i++) {
      const x = a[2 * i];
      const y = mirror ? -a[2 * i + 1] : a[2 * i + 1];
      b.push(3 * (x * Math.cos(0.7) - y * Math.sin(0.7)) + 5, 3 * (x * Math.sin(0.7) + y * Math.cos(0.7)) - 2);
    }
    b[8] = 1; // finite here, NaN in the reference: moved, not fitted on
    b[9] = 1;
    const out = procrustes(a, b);
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(out[i] - a[i]) < 1e-5, `${mirror} ${i}: ${out[i]} vs ${a[i]}`);
    assert.ok(Number.isFinite(out[8]));
  }
  // rotations only: a mirrored copy is not brought back
  const mirrored = [0, 0, 1, 0, 0, -2, 3, -1];
  const rot = procrustes([0, 0, 1, 0, 0, 2, 3, 1], mirrored, { reflection: false });
  assert.ok(meanMove(rot, [0, 0, 1, 0, 0, 2, 3, 1]) > 0.3);
  // fewer than two common rows: as it is
  assert.deepEqual(Array.from(procrustes([0, 0, Number.NaN, 0], [5, 5, 6, 6])), [5, 5, 6, 6]);
});

test("svd of small matrices: U S V^T gives the matrix back, U and V orthogonal, also when singular", () => {
  const r = mulberry32(11);
  const cases = [
    [Array.from({ length: 9 }, () => r() - 0.5), 3],
    [[1, 2, 3, 2, 4, 6, 1, 1, 1], 3], // rank 2
    [[1, 2, 3, 2, 4, 6, 3, 6, 9], 3], // rank 1
    [[0, 0, 0, 0, 0, 0, 0, 0, 0], 3],
    [[0.3, -1, 2, 0.5], 2],
  ];
  for (const [M, d] of cases) {
    const { U, s, V } = svd(M, d);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        let m = 0;
        let uu = 0;
        let vv = 0;
        for (let j = 0; j < d; j++) {
          m += U[a * d + j] * s[j] * V[b * d + j];
          uu += U[j * d + a] * U[j * d + b];
          vv += V[j * d + a] * V[j * d + b];
        }
        assert.ok(Math.abs(m - M[a * d + b]) < 1e-12, `M ${a} ${b}: ${m} vs ${M[a * d + b]}`);
        assert.ok(Math.abs(uu - (a === b)) < 1e-12 && Math.abs(vv - (a === b)) < 1e-12);
      }
    }
  }
});

test("procrustes in 3-D undoes a rotation or reflection, a scale and a shift; a flat cloud too", () => {
  const r = mulberry32(12);
  const n = 20;
  const a = Float32Array.from({ length: 3 * n }, () => 4 * (r() - 0.5));
  a[5] = Number.NaN; // not fitted on
  const R = rotation3(3);
  const move = (src, mirror) => {
    const out = new Float32Array(src.length);
    for (let i = 0; i < n; i++) {
      const p = [src[3 * i], src[3 * i + 1], mirror ? -src[3 * i + 2] : src[3 * i + 2]];
      for (let c = 0; c < 3; c++)
        out[3 * i + c] = 2.5 * (p[0] * R[c] + p[1] * R[3 + c] + p[2] * R[6 + c]) + [1, -2, 3][c];
    }
    return out;
  };
  for (const mirror of [false, true]) {
    const out = procrustes(a, move(a, mirror), { dims: 3 });
    for (let i = 0; i < 3 * n; i++) if (i < 3 || i > 5) assert.ok(Math.abs(out[i] - a[i]) < 1e-4, `${mirror} ${i}`);
    // without scaling: distances as they were (2.5 times a's)
    const same = procrustes(a, move(a, mirror), { dims: 3, scale: false });
    const gap = (x, i, j) => Math.hypot(x[3 * i] - x[3 * j], x[3 * i + 1] - x[3 * j + 1], x[3 * i + 2] - x[3 * j + 2]);
    assert.ok(Math.abs(gap(same, 0, 2) - 2.5 * gap(a, 0, 2)) < 1e-4);
  }
  // rotations only: a mirrored copy is not brought back, but is turned as near as it goes
  const rot = procrustes(a, move(a, true), { dims: 3, reflection: false });
  let off = 0;
  for (let i = 0; i < 3 * n; i++) if (i < 3 || i > 5) off += Math.abs(rot[i] - a[i]);
  assert.ok(off / (3 * n) > 0.1);
  // a flat cloud (z = 0 in both): M is singular, the rotation in the plane is still found
  const flat = a.map((v, i) => (i % 3 === 2 ? 0 : Number.isNaN(v) ? 0 : v));
  const turned = new Float32Array(flat.length);
  for (let i = 0; i < n; i++) {
    turned[3 * i] = flat[3 * i] * Math.cos(1) - flat[3 * i + 1] * Math.sin(1);
    turned[3 * i + 1] = flat[3 * i] * Math.sin(1) + flat[3 * i + 1] * Math.cos(1);
  }
  const back = procrustes(flat, turned, { dims: 3, reflection: false });
  for (let i = 0; i < 3 * n; i++) assert.ok(Math.abs(back[i] - flat[i]) < 1e-4, `flat ${i}: ${back[i]} vs ${flat[i]}`);
  // 2-D as before
  const same = procrustes([0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 1]);
  assert.ok(same.every((v, i) => Math.abs(v - [0, 0, 1, 0, 0, 1][i]) < 1e-7));
});

test("rescale centres and sets the largest coordinate or the spread", () => {
  assert.deepEqual(Array.from(rescale([0, 0, 4, 2], { half: 10 })), [-10, -5, 10, 5]);
  const s = rescale([0, 0, 2, 0, 0, 2, 2, 2], { std: 1e-4 });
  assert.ok(Math.abs(Math.hypot(...s) / Math.sqrt(8) - 1e-4) < 1e-12);
  assert.deepEqual(Array.from(rescale([0, 0, 0, 4, 2, 8], { half: 10, dims: 3 })), [-5, -2.5, -10, 5, 2.5, 10]);
});

test("UMAP and t-SNE lay out in 3-D: clusters kept apart, (n, 3) layouts aligned on their start", () => {
  for (const method of ["umap", "tsne"]) {
    const n = 150;
    const d = 10;
    const { vectors, labels } = clusters(n, d, 3, 4, 5);
    const init = firstOf(vectors, n, d, 3);
    const p = startProjection({ method, vectors, n, d, dims: 3, init });
    assert.equal(p.dims, 3);
    assert.equal(p.layout().length, 3 * n);
    p.step(p.total);
    const a = p.layout();
    assert.equal(a.length, 3 * n);
    assert.ok(purity(a, labels, 10, 3) > 0.95, `${method}: purity ${purity(a, labels, 10, 3)}`);
    // from it, in 3-D: kept where it was
    const next = startProjection({ method, vectors, n, d, dims: 3, init: a, continued: true });
    next.step(next.total);
    const b = next.layout();
    let move = 0;
    let size = 0;
    for (let i = 0; i < n; i++) {
      move += Math.hypot(b[3 * i] - a[3 * i], b[3 * i + 1] - a[3 * i + 1], b[3 * i + 2] - a[3 * i + 2]) / n;
      size += Math.hypot(a[3 * i], a[3 * i + 1], a[3 * i + 2]) / n;
    }
    assert.ok(move < size / 3, `${method}: moved ${move}, size ${size}`);
  }
  assert.throws(
    () =>
      startProjection({ method: "umap", vectors: new Float32Array(9), n: 3, d: 3, dims: 3, init: new Float32Array(6) }),
    /starting points of 3/,
  );
  assert.throws(
    () => startProjection({ method: "umap", vectors: new Float32Array(9), n: 3, d: 3, dims: 4, init: [] }),
    /2 or 3 dimensions/,
  );
});

test("UMAP keeps well-separated clusters apart, and is the same on every run", () => {
  const n = 300;
  const d = 10;
  const { vectors, labels } = clusters(n, d, 3, 4);
  const spec = { method: "umap", vectors, n, d, init: firstTwo(vectors, n, d) };
  const a = run(spec);
  assert.equal(a.length, 2 * n);
  assert.ok(purity(a, labels) > 0.95, `purity ${purity(a, labels)}`);
  assert.deepEqual(run(spec), a); // a fixed seed: reproducible
  assert.notDeepEqual(run({ ...spec, seed: 7 }), a);
});

test("t-SNE keeps well-separated clusters apart, is reproducible, and continues without exaggeration", () => {
  const n = 120;
  const d = 8;
  const { vectors, labels } = clusters(n, d, 3, 4, 2);
  const spec = { method: "tsne", vectors, n, d, init: firstTwo(vectors, n, d) };
  const p = startProjection(spec);
  assert.equal(p.total, TSNE_STEPS);
  p.step(p.total);
  const a = p.layout();
  assert.ok(purity(a, labels) > 0.95, `purity ${purity(a, labels)}`);
  assert.deepEqual(run(spec), a);
  assert.equal(startProjection({ ...spec, init: a, continued: true }).total, TSNE_CONTINUE_STEPS);
});

/** The centre of each of `k` clusters in a layout, (k, 2) flat. */
function centres(layout, labels, k) {
  const out = new Float64Array(2 * k);
  const count = new Array(k).fill(0);
  labels.forEach((c, i) => {
    out[2 * c] += layout[2 * i];
    out[2 * c + 1] += layout[2 * i + 1];
    count[c]++;
  });
  return out.map((v, j) => v / count[j >> 1]);
}

test("a frame started from a layout keeps that layout's arrangement of the clusters", () => {
  for (const method of ["umap", "tsne"]) {
    const n = method === "umap" ? 300 : 120;
    const d = 10;
    const { vectors, labels } = clusters(n, d, 4, 4, 3);
    const first = run({ method, vectors, n, d, init: firstTwo(vectors, n, d) });
    // another arrangement of the same clusters: the first and its nearest swapped (no
    // rotation or reflection undoes that, as it would a swap of opposite corners)
    const at = centres(first, labels, 4);
    const gap = (c) => Math.hypot(at[0] - at[2 * c], at[1] - at[2 * c + 1]);
    const near0 = [1, 2, 3].reduce((a, c) => (gap(c) < gap(a) ? c : a));
    const swap = [0, 1, 2, 3];
    swap[0] = near0;
    swap[near0] = 0;
    const other = first.map((v, j) => v - at[2 * labels[j >> 1] + (j & 1)] + at[2 * swap[labels[j >> 1]] + (j & 1)]);
    // the next epoch: every vector moved a little
    const r = mulberry32(9);
    const next = vectors.map((v) => v + 0.3 * (r() - 0.5));
    const kept = run({ method, vectors: next, n, d, init: first, continued: true });
    const moved = procrustes(first, run({ method, vectors: next, n, d, init: other, continued: true }));
    const near = meanMove(centres(kept, labels, 4), at);
    const far = meanMove(centres(moved, labels, 4), at);
    assert.ok(near < far / 2, `${method}: clusters moved ${near} from the start's places, ${far} from another's`);
  }
});

test("runProjection reports progress with layouts, and stops when cancelled", async () => {
  const n = 60;
  const d = 5;
  const { vectors } = clusters(n, d, 2, 4, 4);
  const spec = { method: "umap", vectors, n, d, init: firstTwo(vectors, n, d) };
  const seen = [];
  let clock = 0;
  const now = () => clock++; // a step per tick: a slice of ~3 steps, a layout every 10 ticks
  const pause = () => Promise.resolve();
  const final = await runProjection(spec, {
    onProgress: (p) => seen.push(p),
    now,
    pause,
    sliceMs: 3,
    layoutMs: 10,
  });
  assert.equal(seen[0].phase, "prepare");
  const steps = seen.slice(1);
  assert.ok(steps.every((p) => p.phase === "optimise" && p.total === 500));
  assert.ok(steps.every((p, i) => i === 0 || p.done > steps[i - 1].done));
  assert.ok(steps.filter((p) => p.layout).length > 3);
  assert.ok(steps.some((p) => !p.layout));
  assert.deepEqual(final, run(spec)); // slicing changes nothing

  const control = new AbortController();
  let after = 0;
  const cancelled = await runProjection(spec, {
    signal: control.signal,
    pause,
    now,
    sliceMs: 3,
    onProgress: (p) => {
      if (control.signal.aborted) after++;
      if (p.phase === "optimise" && p.done >= 30) control.abort();
    },
  });
  assert.equal(cancelled, null);
  assert.equal(after, 0);

  // t-SNE too: stops between slices, and slicing changes nothing
  const tsne = { ...spec, method: "tsne", dims: 3, init: firstOf(vectors, n, d, 3) };
  const stop = new AbortController();
  let reached = 0;
  const none = await runProjection(tsne, {
    signal: stop.signal,
    pause,
    now,
    sliceMs: 3,
    onProgress: (p) => {
      reached = p.done;
      if (p.phase === "optimise" && p.done >= 100) stop.abort();
    },
  });
  assert.equal(none, null);
  assert.ok(reached >= 100 && reached < TSNE_STEPS);
  assert.deepEqual(await runProjection(tsne, { pause, now, sliceMs: 7 }), run(tsne));
});

test("startProjection refuses too few items and mismatched sizes", () => {
  const v = new Float32Array(4);
  assert.throws(() => startProjection({ method: "umap", vectors: v, n: 2, d: 2, init: [0, 0, 1, 1] }), /at least 3/);
  assert.throws(
    () => startProjection({ method: "tsne", vectors: new Float32Array(6), n: 3, d: 3, init: [0, 0] }),
    /expected 3 vectors/,
  );
});

// --- the page's side: inputs, cache, one worker at a time ----------------------------------

/** 3 frames of 6 items; the sample is items [4, 0, 2, 5, 1] (3 is not sampled); item 5
 * is left out of frame 1; vectors of 2 dims are the item number and the frame. */
function fixture() {
  const n = 6;
  const frames = 3;
  const sample = Int32Array.from([4, 0, 2, 5, 1]);
  const vectors = new Float32Array(frames * 5 * 2);
  const coords = new Float32Array(frames * n * 2);
  for (let f = 0; f < frames; f++) {
    for (let j = 0; j < 5; j++) {
      const left = f === 1 && sample[j] === 5;
      vectors[(f * 5 + j) * 2] = left ? Number.NaN : sample[j];
      vectors[(f * 5 + j) * 2 + 1] = left ? Number.NaN : f;
    }
    for (let i = 0; i < n; i++) {
      const left = f === 1 && i === 5;
      coords[(f * n + i) * 2] = left ? Number.NaN : 10 * f + i;
      coords[(f * n + i) * 2 + 1] = left ? Number.NaN : 0 - i + 0;
    }
  }
  return { n, frames, sample, vectors: { data: vectors, shape: [frames, 5, 2] }, coords };
}

test("jobInputs: the frame's sampled items kept, their vectors, a PCA start", () => {
  const data = fixture();
  const job = jobInputs("umap", 1, data, new Map());
  assert.deepEqual(Array.from(job.items), [4, 0, 2, 1]);
  assert.deepEqual(Array.from(job.vectors), [4, 1, 0, 1, 2, 1, 1, 1]);
  assert.deepEqual(Array.from(job.init), [14, -4, 10, 0, 12, -2, 11, -1]); // frame 1's PCA
  assert.equal(job.from, null);
  assert.equal(job.d, 2);
  assert.equal(jobInputs("umap", 0, { ...data, sample: null }, new Map()), null);
  assert.equal(itemsFor("tsne", 5), 5);
  assert.equal(itemsFor("tsne", 50_000), TSNE_MAX);
  assert.equal(itemsFor("umap", 50_000), 50_000);
});

test("jobInputs starts from the nearest frame's layout of the method, missing items at its centre", () => {
  const data = fixture();
  const cache = new Map([
    [
      keyOf("umap", 1),
      {
        items: Int32Array.from([4, 0, 2, 1]),
        coords: Float32Array.from([1, 1, 2, 2, 3, 3, 6, 6]),
        steps: 9,
        from: null,
      },
    ],
    [keyOf("tsne", 2), { items: Int32Array.from([4]), coords: Float32Array.from([9, 9]), steps: 9, from: null }],
  ]);
  assert.equal(nearestLayout(cache, "umap", 2, 3), 1);
  assert.equal(nearestLayout(cache, "umap", 0, 3), 1);
  assert.equal(nearestLayout(cache, "tsne", 0, 3), 2);
  assert.equal(nearestLayout(cache, "umap", 1, 3), null);
  const job = jobInputs("umap", 2, data, cache);
  assert.deepEqual(Array.from(job.items), [4, 0, 2, 5, 1]);
  assert.deepEqual(Array.from(job.init), [1, 1, 2, 2, 3, 3, 3, 3, 6, 6]); // item 5 at the centre
  assert.equal(job.from, 1);
  // the previous frame first at equal distance
  cache.set(keyOf("umap", 0), { items: Int32Array.from([4]), coords: Float32Array.from([0, 0]) });
  cache.set(keyOf("umap", 2), { items: Int32Array.from([4]), coords: Float32Array.from([0, 0]) });
  cache.delete(keyOf("umap", 1));
  assert.equal(nearestLayout(cache, "umap", 1, 3), 0);
});

test("fullCoords, sameItems and describeJob", () => {
  const full = fullCoords(3, [2, 0], [5, 6, 7, 8]);
  assert.deepEqual(Array.from(full.slice(0, 2)), [7, 8]);
  assert.ok(Number.isNaN(full[2]) && Number.isNaN(full[3]));
  assert.deepEqual(Array.from(full.slice(4)), [5, 6]);
  assert.ok(sameItems(null, null) && sameItems([1, 2], Int32Array.from([1, 2])));
  assert.ok(!sameItems([1, 2], [2, 1]) && !sameItems(null, [1]));
  const job = {
    method: "umap",
    frame: 0,
    state: "running",
    phase: "optimise",
    done: 120,
    total: 500,
    items: new Int32Array(2000),
    coords: new Float32Array(0),
    message: "",
    from: null,
  };
  assert.equal(describeJob(job, 10_000), "UMAP 120/500 epochs (2,000 items, a uniform sample of 10,000)");
  assert.equal(describeJob({ ...job, from: 2 }, 2000), "UMAP 120/500 epochs (2,000 items, from frame 3's layout)");
  assert.equal(describeJob({ ...job, phase: "prepare" }, 2000), "UMAP: nearest neighbours of 2,000 items…");
  assert.equal(describeJob({ ...job, method: "tsne", state: "done" }, 2000), "t-SNE of 2,000 items");
  assert.equal(describeJob({ ...job, state: "done", from: 0 }, 2000), "UMAP of 2,000 items, from frame 1's layout");
  assert.equal(describeJob({ ...job, state: "error", message: "out of memory" }, 2000), "UMAP failed: out of memory");
});

function fakeWorkers() {
  const made = [];
  const make = () => {
    const w = {
      sent: [],
      terminated: false,
      onmessage: null,
      onerror: null,
      postMessage(m) {
        this.sent.push(m);
      },
      terminate() {
        this.terminated = true;
      },
      reply(data) {
        this.onmessage({ data: { id: this.sent[0].id, ...data } });
      },
    };
    made.push(w);
    return w;
  };
  return { made, make };
}

test("createProjections: one worker per job, cancelled when the frame changes, layouts cached", () => {
  const data = fixture();
  const { made, make } = fakeWorkers();
  const changes = [];
  const p = createProjections(make, (redraw) => changes.push(redraw));
  assert.equal(p.view("pca", 0, data), null);
  const v = p.view("umap", 0, data);
  assert.equal(v.state, "running");
  assert.deepEqual(Array.from(v.coords), [4, -4, 0, 0, 2, -2, 5, -5, 1, -1]); // the PCA until steps come
  assert.equal(made.length, 1);
  const run = made[0].sent[0];
  assert.equal(run.type, "run");
  assert.equal(run.spec.method, "umap");
  assert.equal(run.spec.n, 5);
  assert.equal(run.spec.continued, false);
  assert.equal(p.view("umap", 0, data), v); // the same job: no new worker
  assert.equal(made.length, 1);

  made[0].reply({ type: "progress", phase: "optimise", done: 10, total: 500 });
  assert.equal(v.done, 10);
  const layout = Float32Array.from([1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
  made[0].reply({ type: "progress", phase: "optimise", done: 20, total: 500, layout });
  assert.equal(v.coords, layout);
  assert.deepEqual(changes, [false, true]);

  // another frame: the first job ends, a new one starts
  const w = p.view("umap", 1, data);
  assert.ok(made[0].terminated);
  assert.equal(made.length, 2);
  made[0].reply({ type: "done", layout }); // late messages of an ended job change nothing
  assert.equal(w.state, "running");
  made[1].reply({ type: "progress", phase: "optimise", done: 499, total: 500 });
  made[1].reply({ type: "done", layout: Float32Array.from([0, 0, 1, 0, 0, 1, 1, 1]) });
  assert.equal(w.state, "done");
  assert.ok(made[1].terminated);
  assert.ok(p.has("umap", 1));

  // back to frame 0: started from frame 1's layout; frame 1 again: at once, from the cache
  const again = p.view("umap", 0, data);
  assert.equal(again.from, 1);
  assert.equal(made[2].sent[0].spec.continued, true);
  const cached = p.view("umap", 1, data);
  assert.equal(cached.state, "done");
  assert.equal(cached.done, 500);
  assert.equal(cached.from, null); // frame 1 started from the PCA
  assert.ok(made[2].terminated);
  assert.equal(made.length, 3);
  assert.deepEqual(p.box("umap"), { x0: 0, y0: 0, x1: 1, y1: 1 });

  // t-SNE: its own jobs and cache; PCA ends the job
  p.view("tsne", 1, data);
  assert.equal(made.length, 4);
  p.view("pca", 1, data);
  assert.ok(made[3].terminated);
  p.reset();
  assert.ok(!p.has("umap", 1));
});

test("createProjections reports errors: from the worker, a page without workers, no vectors", () => {
  const data = fixture();
  const { made, make } = fakeWorkers();
  const p = createProjections(make, () => {});
  const v = p.view("tsne", 0, data);
  made[0].reply({ type: "error", message: "out of memory" });
  assert.equal(v.state, "error");
  assert.equal(v.message, "out of memory");
  assert.equal(p.view("tsne", 0, data), v); // not retried until asked again
  const none = createProjections(
    () => {
      throw new Error("blocked");
    },
    () => {},
  );
  const e = none.view("umap", 0, data);
  assert.equal(e.state, "error");
  assert.match(e.message, /cannot run a web worker \(blocked\)/);
  const empty = p.view("umap", 0, { ...data, vectors: null });
  assert.equal(empty.state, "error");
  assert.match(empty.message, /sent no vectors/);
});

test("3-D jobs: a PCA start from coords3 (else the vectors' first values), their own cache and box", () => {
  const data = fixture();
  const { n, frames } = data;
  const coords3 = new Float32Array(frames * n * 3);
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < n; i++) {
      const left = f === 1 && i === 5;
      coords3.set(left ? [Number.NaN, Number.NaN, Number.NaN] : [10 * f + i, 0 - i, 100 + i], (f * n + i) * 3);
    }
  }
  const job = jobInputs("tsne", 1, { ...data, coords3 }, new Map(), 3);
  assert.deepEqual(Array.from(job.items), [4, 0, 2, 1]);
  assert.deepEqual(Array.from(job.init), [14, -4, 104, 10, 0, 100, 12, -2, 102, 11, -1, 101]);
  // no coords3 yet: the vectors' first three values (these have two: the item and the frame)
  const bare = jobInputs("tsne", 1, data, new Map(), 3);
  assert.deepEqual(Array.from(bare.items), [4, 0, 2, 1]);
  assert.deepEqual(Array.from(bare.init), [4, 1, 0, 0, 1, 0, 2, 1, 0, 1, 1, 0]);
  // from a 3-D layout of the method; 2-D layouts are not started from it
  const cache = new Map([
    [
      keyOf("umap", 1, 3),
      {
        items: Int32Array.from([4, 0, 2, 1]),
        coords: Float32Array.from([1, 1, 1, 2, 2, 2, 3, 3, 3, 6, 6, 6]),
        dims: 3,
        steps: 9,
        from: null,
      },
    ],
  ]);
  assert.equal(nearestLayout(cache, "umap", 2, 3, 3), 1);
  assert.equal(nearestLayout(cache, "umap", 2, 3), null);
  const cont = jobInputs("umap", 2, { ...data, coords3 }, cache, 3);
  assert.equal(cont.from, 1);
  assert.deepEqual(Array.from(cont.init), [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 6, 6, 6]);
  const full = fullCoords(3, [2, 0], [5, 6, 7, 8, 9, 10], 3);
  assert.deepEqual(Array.from(full.slice(0, 3)), [8, 9, 10]);
  assert.ok(full.slice(3, 6).every(Number.isNaN));
  assert.deepEqual(Array.from(full.slice(6)), [5, 6, 7]);

  const { made, make } = fakeWorkers();
  const p = createProjections(make, () => {});
  const v = p.view("umap", 0, { ...data, coords3 }, 3);
  assert.equal(v.dims, 3);
  assert.equal(made[0].sent[0].spec.dims, 3);
  assert.equal(made[0].sent[0].spec.init.length, 15);
  assert.match(describeJob(v, 6), /^3-D UMAP: nearest neighbours of 5 items/);
  made[0].reply({ type: "done", layout: Float32Array.from({ length: 15 }, (_, i) => i) });
  assert.ok(p.has("umap", 0, 3) && !p.has("umap", 0));
  assert.deepEqual(p.box("umap", undefined, 3), { x0: 0, y0: 1, x1: 12, y1: 13, z0: 2, z1: 14 });
  assert.deepEqual(p.box("umap"), { x0: -1, y0: -1, x1: 1, y1: 1 }); // no 2-D layout yet
  assert.equal(p.view("umap", 0, { ...data, coords3 }, 3).state, "done");
  assert.equal(made.length, 1);
  // the 2-D layout of the same frame is another job
  assert.equal(p.view("umap", 0, data).dims, 2);
  assert.equal(made.length, 2);
  assert.equal(made[1].sent[0].spec.dims, 2);
});
