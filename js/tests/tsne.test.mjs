import assert from "node:assert/strict";
import { test } from "node:test";
import {
  affinities,
  createTree,
  createTSNE,
  EXAGGERATED_STEPS,
  nearestNeighbours,
  STEPS,
  THETA,
} from "../src/lib/tsne.js";
import { clusters, gauss, purity, ranked } from "./layouts.mjs";

/** A small random start, (n, dims). */
function start(n, dims, seed = 5, spread = 1e-4) {
  const g = gauss(seed);
  return Float64Array.from({ length: n * dims }, () => spread * g());
}

/** P as a dense (n, n) matrix. */
function dense(P, n) {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let e = P.rows[i]; e < P.rows[i + 1]; e++) out[i * n + P.cols[e]] = P.vals[e];
  return out;
}

/** The exact gradient of KL(P || Q) (no factor 4) and KL itself, O(n^2). */
function exact(P, y, n, dims, exaggeration = 1) {
  const p = dense(P, n);
  const w = new Float64Array(n * n);
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      let s = 0;
      for (let t = 0; t < dims; t++) s += (y[i * dims + t] - y[j * dims + t]) ** 2;
      w[i * n + j] = 1 / (1 + s);
      z += w[i * n + j];
    }
  }
  const grad = new Float64Array(n * dims);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const pij = p[i * n + j];
      const q = w[i * n + j] / z;
      if (pij > 0) kl += pij * Math.log(pij / q);
      const f = (exaggeration * pij - q) * w[i * n + j];
      for (let t = 0; t < dims; t++) grad[i * dims + t] += f * (y[i * dims + t] - y[j * dims + t]);
    }
  }
  return { grad, kl };
}

function relError(a, b) {
  let e = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(e / s);
}

test("nearestNeighbours: the exact k nearest, nearest first, duplicates included", () => {
  const n = 150;
  const d = 7;
  const g = gauss(3);
  const v = Float32Array.from({ length: n * d }, () => g());
  v.copyWithin(10 * d, 3 * d, 4 * d); // item 10 is item 3
  const k = 12;
  const { index, dist2 } = nearestNeighbours(v, n, d, k);
  for (let i = 0; i < n; i++) {
    const all = ranked(v, n, d, i).map(([s]) => s);
    for (let m = 0; m < k; m++) {
      assert.ok(Math.abs(dist2[i * k + m] - all[m]) < 1e-9, `item ${i}, neighbour ${m}`);
      const j = index[i * k + m];
      assert.notEqual(j, i);
      let s = 0;
      for (let t = 0; t < d; t++) s += (v[i * d + t] - v[j * d + t]) ** 2;
      assert.ok(Math.abs(s - dist2[i * k + m]) < 1e-9);
    }
  }
  assert.equal(index[3 * k], 10);
  assert.equal(dist2[3 * k], 0);
  assert.throws(() => nearestNeighbours(v, 5, d * 30, 5), /cannot find 5 neighbours among 5/);
});

test("affinities: symmetric, summing to 1, each item's Gaussian at the perplexity asked", () => {
  const n = 200;
  const d = 5;
  const { vectors } = clusters(n, d, 3, 3, 4);
  const perplexity = 10;
  const knn = nearestNeighbours(vectors, n, d, 30);
  const P = affinities(knn, n, perplexity);
  const p = dense(P, n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    assert.equal(p[i * n + i], 0);
    for (let j = 0; j < n; j++) {
      assert.ok(Math.abs(p[i * n + j] - p[j * n + i]) < 1e-15);
      total += p[i * n + j];
    }
  }
  assert.ok(Math.abs(total - 1) < 1e-12);
  // the conditional p(.|i) back from P: where j's row does not hold i, P's entry is p(j|i) / 2n
  // alone; over all of i's neighbours its entropy is log(perplexity) (checked on item 0's
  // conditional, rebuilt from the distances with the same bisection)
  const k = 30;
  const e = Array.from({ length: k }, (_, m) => knn.dist2[m] - knn.dist2[0]);
  let lo = 0;
  let hi = 1e9;
  for (let it = 0; it < 200; it++) {
    const beta = (lo + hi) / 2;
    const w = e.map((x) => Math.exp(-beta * x));
    const s = w.reduce((a, b) => a + b);
    const h = -w.reduce((a, x) => a + (x / s) * Math.log(x / s || 1), 0);
    if (h > Math.log(perplexity)) lo = beta;
    else hi = beta;
  }
  const w = e.map((x) => Math.exp(-lo * x));
  const s = w.reduce((a, b) => a + b);
  for (let m = 0; m < k; m++) {
    const j = knn.index[m];
    if (knn.index.subarray(j * k, (j + 1) * k).includes(0)) continue;
    assert.ok(Math.abs(p[j] * 2 * n - w[m] / s) < 1e-5, `neighbour ${m}`);
  }
});

test("the tree's gradient: exact at theta 0, close at 0.5, in 2-D and 3-D, with points at one place", () => {
  const n = 90;
  const d = 6;
  const { vectors } = clusters(n, d, 3, 3, 6);
  for (const dims of [2, 3]) {
    const y = start(n, dims, 7, 3);
    // two points at one place: the tree holds them as a list
    for (let t = 0; t < dims; t++) y[5 * dims + t] = y[9 * dims + t];
    const ts = createTSNE({ vectors, n, d, dims, init: y, continued: true });
    const ref = exact(ts.P, y, n, dims, 4);
    const g0 = ts.gradient({ theta: 0, exaggeration: 4 });
    assert.ok(relError(g0, ref.grad) < 1e-12, `${dims}-D theta 0: ${relError(g0, ref.grad)}`);
    const g5 = ts.gradient({ exaggeration: 4 });
    const err = relError(g5, ref.grad);
    assert.ok(err < 0.02 && err > 0, `${dims}-D theta ${THETA}: ${err}`);
    assert.ok(Math.abs(ts.kl(0) - ref.kl) < 1e-12, `${dims}-D KL ${ts.kl(0)} vs ${ref.kl}`);
  }
});

test("a far cluster counts with its spread: the force on a point far away within 0.1 %", () => {
  const n = 41;
  for (const dims of [2, 3]) {
    const g = gauss(9);
    // 40 points around the origin, one 25 away
    const y = Float64Array.from({ length: n * dims }, () => g());
    y[40 * dims] = 25;
    for (let t = 1; t < dims; t++) y[40 * dims + t] = 0;
    const vectors = Float32Array.from(y);
    const ts = createTSNE({ vectors, n, d: dims, dims, init: y, continued: true });
    const ref = exact(ts.P, y, n, dims, 0);
    const g1 = ts.gradient({ exaggeration: 0, theta: 0.4 });
    const far = relError(g1.subarray(40 * dims), ref.grad.subarray(40 * dims));
    assert.ok(far < 1e-3, `${dims}-D: ${far}`);
  }
});

test("createTree keeps every point once, its counts and centres of mass", () => {
  const n = 500;
  for (const dims of [2, 3]) {
    const y = start(n, dims, 8, 1);
    y.copyWithin(0, dims, 2 * dims); // points 0 and 1 at one place
    const tree = createTree(n, dims);
    tree.build(y, 0.5);
    assert.deepEqual(
      Array.from(tree.order).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.equal(tree.nodes[dims], n); // the root counts every point
    const mean = new Float64Array(dims);
    for (let t = 0; t < dims; t++) {
      for (let i = 0; i < n; i++) mean[t] += y[i * dims + t] / n;
      assert.ok(Math.abs(tree.nodes[t] - mean[t]) < 1e-12);
    }
    // its second moments about the centre of mass, after the link and the distance
    for (let u = 0, e = dims + 3; u < dims; u++) {
      for (let v = u; v < dims; v++, e++) {
        let m = 0;
        for (let i = 0; i < n; i++) m += (y[i * dims + u] - mean[u]) * (y[i * dims + v] - mean[v]);
        assert.ok(Math.abs(tree.nodes[e] - m) < 1e-9 * n, `${dims}-D moment ${u}${v}`);
      }
    }
    assert.equal(tree.stride, dims === 2 ? 8 : 12);
    // the tree grows once and is rebuilt in place
    const before = tree.nodes;
    tree.build(y, 0.5);
    assert.equal(tree.nodes, before);
  }
});

test("t-SNE separates clusters in 2-D and 3-D, lowers KL, and is the same on every run", () => {
  const n = 160;
  const d = 10;
  const { vectors, labels } = clusters(n, d, 4, 3, 2);
  for (const dims of [2, 3]) {
    const ts = createTSNE({ vectors, n, d, dims, init: start(n, dims) });
    assert.equal(ts.total, STEPS);
    ts.step(EXAGGERATED_STEPS);
    const early = ts.kl();
    const kl = [];
    for (let s = 0; s < 3; s++) {
      ts.step((STEPS - EXAGGERATED_STEPS) / 3);
      kl.push(ts.kl());
    }
    assert.equal(ts.done(), STEPS);
    assert.equal(ts.step(5), STEPS); // no more than asked for
    assert.ok(early > kl[0] && kl[0] >= kl[1] - 1e-3 && kl[1] >= kl[2] - 1e-3, `${dims}-D KL ${early} ${kl}`);
    const a = purity(ts.y, labels, 10, dims);
    assert.ok(a > 0.98, `${dims}-D agreement ${a}`);
    // the same inputs, in other slices: the same layout
    const again = createTSNE({ vectors, n, d, dims, init: start(n, dims) });
    for (let s = 0; s < STEPS; s += 333) again.step(333);
    assert.deepEqual(again.y, ts.y);
  }
});

test("t-SNE from a formed layout: no exaggeration, fewer steps, the layout's scale kept", () => {
  const n = 150;
  const d = 8;
  const { vectors, labels } = clusters(n, d, 3, 4, 3);
  const first = createTSNE({ vectors, n, d, init: start(n, 2) });
  first.step(first.total);
  const spread = (y) => Math.sqrt(y.reduce((a, v) => a + v * v, 0) / y.length);
  const next = createTSNE({ vectors, n, d, init: first.y, continued: true });
  assert.ok(next.total < first.total);
  next.step(next.total);
  assert.ok(Math.abs(spread(next.y) / spread(first.y) - 1) < 0.25, `${spread(next.y)} vs ${spread(first.y)}`);
  assert.ok(purity(next.y, labels, 10, 2) > 0.98);
  assert.throws(() => createTSNE({ vectors, n, d, dims: 4, init: start(n, 4) }), /2 or 3 dimensions/);
});
