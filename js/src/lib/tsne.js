// @ts-check
// Barnes-Hut t-SNE in 2-D or 3-D (van der Maaten 2014, "Accelerating t-SNE using
// tree-based algorithms"), written for the projector's web worker: typed arrays
// throughout, no allocation in an iteration once the tree has grown to its size, no DOM.
//
// - input affinities: each item's k = 3 x perplexity nearest neighbours (exact, Euclidean),
//   a Gaussian per item whose width gives that perplexity (bisection on the precision),
//   symmetrised and normalised to sum 1: P is sparse (CSR);
// - the gradient: attraction over P's entries (each pair once), repulsion through a
//   quadtree (2-D) or an octree (3-D) rebuilt every iteration: a cell whose half-width is
//   below theta times its distance is taken as one body at its centre of mass, with the
//   second-order (quadrupole) term of its points' spread; theta = 0 is the exact gradient;
// - the optimisation as the reference implementation: early exaggeration 12 with momentum
//   0.5 for the first 250 iterations, then momentum 0.8; per-coordinate gains (+0.2 while
//   the gradient's sign is not the last update's, x0.8 when it is, at least 0.01); the
//   learning rate max(N / 12, 200) (Belkina et al. 2019, scikit-learn's and openTSNE's
//   "auto"); the layout centred after every iteration; Student-t with one degree of
//   freedom in 2-D and 3-D alike.
//
// THETA: the reference implementation's test (half-width / distance < 0.5) alone leaves
// about 12 % of the repulsion out at 10,000 points and a layout more compressed than
// scikit-learn's and openTSNE's (their test, side / distance < 0.5: about 2 %). With the
// quadrupole term, half-width / distance < 0.4 errs by 2 % as theirs and gives their
// layout (the same KL divergence and spread on 10,000 points of 50 dims), at 0.7 times the
// cost of their test without the term.
//
// The gradient has no factor 4 (as the reference implementation and openTSNE: the learning
// rate absorbs it). Deterministic: no random numbers anywhere, the same inputs give the
// same layout.

export const PERPLEXITY = 30;
/** A cell is one body when its half-width is below THETA times its distance. */
export const THETA = 0.4;
export const EXAGGERATION = 12;
/** Iterations with exaggerated P and momentum 0.5 (from a PCA start). */
export const EXAGGERATED_STEPS = 250;
/** Iterations in all from a PCA start ... */
export const STEPS = 1000;
/** ... and from a formed layout (another frame's): no exaggeration, momentum 0.8. */
export const CONTINUE_STEPS = 300;
const MOMENTUM = 0.5;
const FINAL_MOMENTUM = 0.8;
const MIN_GAIN = 0.01;
/** A cell this deep (its width 2^-MAX_DEPTH of the root's) holds its points as a list. */
const MAX_DEPTH = 48;

// --- nearest neighbours -------------------------------------------------------------------

/**
 * The unit direction of largest variance of `vectors` (n, d) (power iteration on the
 * covariance) and the column order by variance, largest first.
 * @param {ArrayLike<number>} vectors
 * @param {number} n
 * @param {number} d
 */
function spread(vectors, n, d) {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) mean[t] += vectors[i * d + t] / n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < d; t++) c[t] = vectors[i * d + t] - mean[t];
    for (let a = 0; a < d; a++) {
      const ca = c[a];
      for (let b = a; b < d; b++) cov[a * d + b] += ca * c[b];
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) cov[a * d + b] = cov[b * d + a];
  const columns = Array.from({ length: d }, (_, t) => t).sort((a, b) => cov[b * d + b] - cov[a * d + a] || a - b);
  let u = new Float64Array(d);
  u[columns[0]] = 1;
  let v = new Float64Array(d);
  for (let it = 0; it < 100; it++) {
    let norm = 0;
    for (let a = 0; a < d; a++) {
      let s = 0;
      for (let b = 0; b < d; b++) s += cov[a * d + b] * u[b];
      v[a] = s;
      norm += s * s;
    }
    norm = Math.sqrt(norm);
    if (!(norm > 0)) break;
    let change = 0;
    for (let a = 0; a < d; a++) {
      v[a] /= norm;
      change += (v[a] - u[a]) ** 2;
    }
    [u, v] = [v, u];
    if (change < 1e-12) break;
  }
  return { direction: u, columns };
}

/**
 * Each item's `k` nearest other items (Euclidean, exact), nearest first: `index` and
 * squared distances `dist2`, both (n, k) flat. The items are visited in order of their
 * projection on the direction of largest variance, outwards from each item; a direction
 * stops once the gap in that projection alone (a lower bound of the distance) exceeds the
 * k-th distance found, and a distance stops summing once it exceeds it, the columns of
 * largest variance summed first.
 * @param {ArrayLike<number>} vectors (n, d) flat
 * @param {number} n
 * @param {number} d
 * @param {number} k at most n - 1
 * @returns {{index: Int32Array, dist2: Float64Array}}
 */
export function nearestNeighbours(vectors, n, d, k) {
  if (k > n - 1 || k < 1) throw new Error(`cannot find ${k} neighbours among ${n} items`);
  const { direction, columns } = spread(vectors, n, d);
  const proj = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += direction[t] * vectors[i * d + t];
    proj[i] = s;
  }
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => proj[a] - proj[b] || a - b);
  const key = new Float64Array(n);
  for (let a = 0; a < n; a++) key[a] = proj[order[a]];
  // the first H columns (of largest variance) of every item together, the rest apart: most
  // distances are settled by the first ones, which then stay in cache
  const H = Math.min(d, 12);
  const R = d - H;
  const x = new Float64Array(n * H);
  const rest = new Float64Array(n * R);
  for (let a = 0; a < n; a++) {
    const off = order[a] * d;
    for (let t = 0; t < H; t++) x[a * H + t] = vectors[off + columns[t]];
    for (let t = 0; t < R; t++) rest[a * R + t] = vectors[off + columns[H + t]];
  }
  const index = new Int32Array(n * k);
  const dist2 = new Float64Array(n * k);
  // a max-heap of the k nearest so far: hd[0] the farthest of them
  const hd = new Float64Array(k);
  const hi = new Int32Array(k);
  for (let a = 0; a < n; a++) {
    let size = 0;
    let lo = a - 1;
    let up = a + 1;
    const oa = a * H;
    const ra = a * R;
    const x0 = key[a];
    for (;;) {
      const gl = lo >= 0 ? x0 - key[lo] : Infinity;
      const gu = up < n ? key[up] - x0 : Infinity;
      let b;
      let gap;
      if (gl <= gu) {
        b = lo--;
        gap = gl;
      } else {
        b = up++;
        gap = gu;
      }
      if (gap === Infinity) break;
      const bound = size === k ? hd[0] : Infinity;
      // every item left is at least this far along the direction
      if (gap * gap >= bound) break;
      const ob = b * H;
      let s = 0;
      for (let t = 0; t < H; t++) {
        const u = x[oa + t] - x[ob + t];
        s += u * u;
      }
      if (s >= bound) continue;
      const rb = b * R;
      for (let t = 0; t < R; t++) {
        const u = rest[ra + t] - rest[rb + t];
        s += u * u;
        if (s >= bound) break;
      }
      if (s >= bound) continue;
      if (size < k) {
        // sift up
        let c = size++;
        while (c > 0) {
          const p = (c - 1) >> 1;
          if (hd[p] >= s) break;
          hd[c] = hd[p];
          hi[c] = hi[p];
          c = p;
        }
        hd[c] = s;
        hi[c] = b;
      } else {
        // replace the farthest, sift down
        let c = 0;
        for (;;) {
          const l = 2 * c + 1;
          if (l >= k) break;
          const r = l + 1 < k && hd[l + 1] > hd[l] ? l + 1 : l;
          if (hd[r] <= s) break;
          hd[c] = hd[r];
          hi[c] = hi[r];
          c = r;
        }
        hd[c] = s;
        hi[c] = b;
      }
    }
    // pop the heap: farthest last
    const row = order[a] * k;
    for (let m = k - 1; m >= 0; m--) {
      dist2[row + m] = hd[0];
      index[row + m] = order[hi[0]];
      const ls = hd[m];
      const li = hi[m];
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        if (l >= m) break;
        const r = l + 1 < m && hd[l + 1] > hd[l] ? l + 1 : l;
        if (hd[r] <= ls) break;
        hd[c] = hd[r];
        hi[c] = hi[r];
        c = r;
      }
      hd[c] = ls;
      hi[c] = li;
    }
  }
  return { index, dist2 };
}

// --- input affinities ---------------------------------------------------------------------

/**
 * @typedef {{rows: Int32Array, cols: Int32Array, vals: Float64Array}} Sparse
 *   a symmetric (n, n) matrix in compressed rows: row i's entries are cols/vals[rows[i] ..
 *   rows[i + 1]]
 */

/**
 * t-SNE's input affinities P (symmetric, summing to 1, zero diagonal) from each item's k
 * nearest neighbours: p(j|i) = exp(-beta_i |x_i - x_j|^2) / sum, beta_i found by bisection
 * so that p(.|i) has the perplexity asked; P = (p(j|i) + p(i|j)) / 2n.
 * @param {{index: Int32Array, dist2: Float64Array}} knn (n, k) each
 * @param {number} n
 * @param {number} perplexity
 * @returns {Sparse}
 */
export function affinities(knn, n, perplexity) {
  const k = knn.index.length / n;
  const cond = new Float64Array(n * k);
  const target = Math.log(perplexity);
  for (let i = 0; i < n; i++) {
    const o = i * k;
    // distances from the nearest: exp() of them cannot all underflow
    const near = knn.dist2[o];
    let mean = 0;
    for (let m = 0; m < k; m++) mean += knn.dist2[o + m] - near;
    mean /= k;
    let beta = mean > 0 ? 1 / mean : 1;
    let lo = 0;
    let hi = Infinity;
    for (let it = 0; it < 200; it++) {
      let sum = 0;
      let sd = 0;
      for (let m = 0; m < k; m++) {
        const e = knn.dist2[o + m] - near;
        const w = Math.exp(-beta * e);
        cond[o + m] = w;
        sum += w;
        sd += w * e;
      }
      // the entropy of p(.|i) (natural log)
      const diff = Math.log(sum) + (beta * sd) / sum - target;
      if (Math.abs(diff) < 1e-5) break;
      if (diff > 0) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (lo + beta) / 2;
      }
    }
    let sum = 0;
    for (let m = 0; m < k; m++) sum += cond[o + m];
    for (let m = 0; m < k; m++) cond[o + m] /= sum;
  }
  // P + P^T: row i holds its own neighbours and the items that have i as a neighbour
  const count = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    count[i] += k;
    for (let m = 0; m < k; m++) count[knn.index[i * k + m]]++;
  }
  const start = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) start[i + 1] = start[i] + count[i];
  const cols = new Int32Array(start[n]);
  const vals = new Float64Array(start[n]);
  const fill = start.slice(0, n);
  for (let i = 0; i < n; i++) {
    for (let m = 0; m < k; m++) {
      const j = knn.index[i * k + m];
      const p = cond[i * k + m];
      cols[fill[i]] = j;
      vals[fill[i]++] = p;
      cols[fill[j]] = i;
      vals[fill[j]++] = p;
    }
  }
  // merge the pairs found both ways, in place, row by row
  const at = new Int32Array(n).fill(-1);
  const rows = new Int32Array(n + 1);
  let w = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    rows[i] = w;
    for (let e = start[i]; e < start[i + 1]; e++) {
      const j = cols[e];
      if (at[j] >= rows[i]) {
        vals[at[j]] += vals[e];
      } else {
        at[j] = w;
        cols[w] = j;
        vals[w++] = vals[e];
      }
      total += vals[e];
    }
  }
  rows[n] = w;
  for (let e = 0; e < w; e++) vals[e] /= total;
  return { rows, cols: cols.slice(0, w), vals: vals.slice(0, w) };
}

// --- the space-partitioning tree ----------------------------------------------------------

/**
 * A quadtree (dims 2) or octree (dims 3) over a layout, rebuilt in place: one Float64Array
 * `nodes` of records of `stride` values, so that a node's data share one or two cache
 * lines: its centre of mass (dims values), the count of points below it, a link (> 0: an
 * inner node, its 2^dims children consecutive from that node; <= 0: a leaf whose points are
 * a list from -link - 1 through `next`, -1 ending it: none, one, or several at one place or
 * at MAX_DEPTH), the squared distance beyond which the cell is taken as one body
 * ((half-width / theta)^2; Infinity for theta 0: exact), and its points' second moments
 * about the centre of mass, sum (y - c)(y - c)^T: xx, xy, yy in 2-D; xx, xy, xz, yy, yz,
 * zz in 3-D. Node 0 is the root, a cube around the layout.
 * @param {number} n
 * @param {2 | 3} dims
 */
export function createTree(n, dims) {
  const fan = 1 << dims;
  const MOM = dims + 3;
  const S = MOM + (dims === 2 ? 3 : 6);
  const CNT = dims;
  const LINK = dims + 1;
  const FAR = dims + 2;
  let cap = 0;
  let nodes = new Float64Array(0);
  /** the cells' centres (build only) */
  let cen = new Float64Array(0);
  const next = new Int32Array(n);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const dfs = new Int32Array(1 + (MAX_DEPTH + 2) * fan);
  const lo = new Float64Array(dims);
  const hi = new Float64Array(dims);
  let used = 0;
  /** @type {ArrayLike<number>} */
  let y = lo;

  /** @param {number} want nodes */
  function grow(want) {
    if (want <= cap) return;
    const c = Math.max(want, 2 * cap, 64);
    const a = new Float64Array(c * S);
    a.set(nodes);
    nodes = a;
    const b = new Float64Array(c * dims);
    b.set(cen);
    cen = b;
    cap = c;
  }

  /** @param {number} node @returns {number} the first child */
  function split(node) {
    grow(used + fan);
    const first = used;
    used += fan;
    nodes[node * S + LINK] = first;
    const h = nodes[node * S + FAR] / 2;
    for (let q = 0; q < fan; q++) {
      const c = first + q;
      for (let t = 0; t < dims; t++) {
        nodes[c * S + t] = 0;
        cen[c * dims + t] = cen[node * dims + t] + ((q >> t) & 1 ? h : -h);
      }
      nodes[c * S + CNT] = 0;
      nodes[c * S + LINK] = 0;
      nodes[c * S + FAR] = h;
      for (let t = MOM; t < S; t++) nodes[c * S + t] = 0;
    }
    return first;
  }

  /** @param {number} p */
  function insert(p) {
    const three = dims === 3;
    const px = y[p * dims];
    const py = y[p * dims + 1];
    const pz = three ? y[p * dims + 2] : 0;
    let node = 0;
    for (let depth = 0; ; depth++) {
      const b = node * S;
      nodes[b + CNT]++;
      nodes[b] += px;
      nodes[b + 1] += py;
      if (three) {
        nodes[b + 2] += pz;
        nodes[b + MOM] += px * px;
        nodes[b + MOM + 1] += px * py;
        nodes[b + MOM + 2] += px * pz;
        nodes[b + MOM + 3] += py * py;
        nodes[b + MOM + 4] += py * pz;
        nodes[b + MOM + 5] += pz * pz;
      } else {
        nodes[b + MOM] += px * px;
        nodes[b + MOM + 1] += px * py;
        nodes[b + MOM + 2] += py * py;
      }
      const link = nodes[b + LINK];
      if (link > 0) {
        const e = node * dims;
        node = link + (px >= cen[e] ? 1 : 0) + (py >= cen[e + 1] ? 2 : 0) + (three && pz >= cen[e + 2] ? 4 : 0);
        continue;
      }
      const q = -link - 1;
      if (q < 0) {
        nodes[b + LINK] = -p - 1;
        next[p] = -1;
        return;
      }
      const qx = y[q * dims];
      const qy = y[q * dims + 1];
      const qz = three ? y[q * dims + 2] : 0;
      if ((px === qx && py === qy && pz === qz) || depth >= MAX_DEPTH) {
        next[p] = q;
        nodes[b + LINK] = -p - 1;
        return;
      }
      // a leaf with another place: its points (all at one place) go one level down
      const first = split(node);
      const e = node * dims;
      const to = first + (qx >= cen[e] ? 1 : 0) + (qy >= cen[e + 1] ? 2 : 0) + (three && qz >= cen[e + 2] ? 4 : 0);
      const t = to * S;
      nodes[t + LINK] = -q - 1;
      for (let j = q; j >= 0; j = next[j]) {
        nodes[t + CNT]++;
        nodes[t] += qx;
        nodes[t + 1] += qy;
        if (three) {
          nodes[t + 2] += qz;
          nodes[t + MOM] += qx * qx;
          nodes[t + MOM + 1] += qx * qy;
          nodes[t + MOM + 2] += qx * qz;
          nodes[t + MOM + 3] += qy * qy;
          nodes[t + MOM + 4] += qy * qz;
          nodes[t + MOM + 5] += qz * qz;
        } else {
          nodes[t + MOM] += qx * qx;
          nodes[t + MOM + 1] += qx * qy;
          nodes[t + MOM + 2] += qy * qy;
        }
      }
      node = first + (px >= cen[e] ? 1 : 0) + (py >= cen[e + 1] ? 2 : 0) + (three && pz >= cen[e + 2] ? 4 : 0);
    }
  }

  const tree = {
    dims,
    stride: S,
    /** the node records (replaced when the tree grows: read it after build) */
    nodes,
    next,
    /** the points in the tree's depth-first order: near points together */
    order,
    /**
     * @param {ArrayLike<number>} layout (n, dims) flat
     * @param {number} theta
     */
    build(layout, theta) {
      y = layout;
      grow(2 * fan * Math.max(n, 1));
      lo.fill(Infinity);
      hi.fill(-Infinity);
      for (let i = 0; i < n; i++) {
        for (let t = 0; t < dims; t++) {
          const v = y[i * dims + t];
          if (v < lo[t]) lo[t] = v;
          if (v > hi[t]) hi[t] = v;
        }
      }
      let h = 0;
      for (let t = 0; t < dims; t++) {
        h = Math.max(h, (hi[t] - lo[t]) / 2);
        cen[t] = (lo[t] + hi[t]) / 2;
        nodes[t] = 0;
      }
      for (let t = MOM; t < S; t++) nodes[t] = 0;
      used = 1;
      nodes[CNT] = 0;
      nodes[LINK] = 0;
      // a little larger: every point strictly inside
      nodes[FAR] = h > 0 ? h * (1 + 1e-9) + Number.MIN_VALUE : 1;
      // in the last build's order: nodes near in space are near in memory
      for (let o = 0; o < n; o++) insert(order[o]);
      const k = theta > 0 ? 1 / (theta * theta) : Infinity;
      for (let node = 0; node < used; node++) {
        const b = node * S;
        const c = nodes[b + CNT];
        if (c > 1) for (let t = 0; t < dims; t++) nodes[b + t] /= c;
        // the second moments about the centre of mass: sum (y - com)(y - com)^T
        if (c <= 1) for (let t = MOM; t < S; t++) nodes[b + t] = 0;
        else {
          for (let u = 0, e = MOM; u < dims; u++) {
            for (let v = u; v < dims; v++, e++) nodes[b + e] -= c * nodes[b + u] * nodes[b + v];
          }
        }
        const hw = nodes[b + FAR];
        nodes[b + FAR] = hw * hw * k;
      }
      let sp = 0;
      let at = 0;
      dfs[sp++] = 0;
      while (sp > 0) {
        const node = dfs[--sp];
        const link = nodes[node * S + LINK];
        if (link <= 0) for (let j = -link - 1; j >= 0; j = next[j]) order[at++] = j;
        else for (let q = link + fan - 1; q >= link; q--) if (nodes[q * S + CNT] > 0) dfs[sp++] = q;
      }
      tree.nodes = nodes;
    },
  };
  return tree;
}

/**
 * The repulsive forces and the normalisation: `neg[i]` = sum over j != i of
 * w_ij^2 (y_i - y_j) and Z = sum over i != j of w_ij, w_ij = 1 / (1 + |y_i - y_j|^2). A far
 * cell's m points y_j = c + e_j (c its centre of mass, M = sum e_j e_j^T) count as the
 * second-order Taylor expansion of both sums about c: with r = y_i - c, w = 1 / (1 + |r|^2),
 *   sum w_ij ~ m w + w^2 (4 w r.Mr - tr M),
 *   sum w_ij^2 (y_i - y_j) ~ (m w^2 + 12 w^4 r.Mr - 2 w^3 tr M) r - 4 w^3 M r
 * (the first-order terms vanish about the centre of mass). Returns Z.
 * @param {ReturnType<typeof createTree>} tree built on `y`
 * @param {Float64Array} y (n, dims) flat
 * @param {number} n
 * @param {Float64Array} neg (n, dims) flat, written
 * @param {Int32Array} stack at least 1 + (MAX_DEPTH + 1) * 2^dims long
 */
function repulsion(tree, y, n, neg, stack) {
  const { nodes: T, next, order } = tree;
  let z = 0;
  if (tree.dims === 2) {
    for (let o = 0; o < n; o++) {
      const i = order[o];
      const yx = y[2 * i];
      const yy = y[2 * i + 1];
      let fx = 0;
      let fy = 0;
      let sp = 0;
      stack[sp++] = 0;
      while (sp > 0) {
        const b = 8 * stack[--sp];
        const dx = yx - T[b];
        const dy = yy - T[b + 1];
        const d2 = dx * dx + dy * dy;
        const link = T[b + 3];
        if (link > 0) {
          if (T[b + 4] < d2) {
            const w = 1 / (1 + d2);
            const w2 = w * w;
            const w3 = w2 * w;
            const m = T[b + 2];
            const mxx = T[b + 5];
            const mxy = T[b + 6];
            const myy = T[b + 7];
            const tr = mxx + myy;
            const rx = mxx * dx + mxy * dy;
            const ry = mxy * dx + myy * dy;
            const rmr = dx * rx + dy * ry;
            z += m * w + w2 * (4 * w * rmr - tr);
            const f = m * w2 + 12 * w2 * w2 * rmr - 2 * w3 * tr;
            fx += f * dx - 4 * w3 * rx;
            fy += f * dy - 4 * w3 * ry;
          } else {
            for (let q = link; q < link + 4; q++) if (T[8 * q + 2] > 0) stack[sp++] = q;
          }
        } else if (T[b + 2] === 1) {
          if (link === -i - 1) continue;
          const w = 1 / (1 + d2);
          z += w;
          fx += w * w * dx;
          fy += w * w * dy;
        } else {
          for (let j = -link - 1; j >= 0; j = next[j]) {
            if (j === i) continue;
            const ex = yx - y[2 * j];
            const ey = yy - y[2 * j + 1];
            const w = 1 / (1 + ex * ex + ey * ey);
            z += w;
            fx += w * w * ex;
            fy += w * w * ey;
          }
        }
      }
      neg[2 * i] = fx;
      neg[2 * i + 1] = fy;
    }
    return z;
  }
  for (let o = 0; o < n; o++) {
    const i = order[o];
    const yx = y[3 * i];
    const yy = y[3 * i + 1];
    const yz = y[3 * i + 2];
    let fx = 0;
    let fy = 0;
    let fz = 0;
    let sp = 0;
    stack[sp++] = 0;
    while (sp > 0) {
      const b = 12 * stack[--sp];
      const dx = yx - T[b];
      const dy = yy - T[b + 1];
      const dz = yz - T[b + 2];
      const d2 = dx * dx + dy * dy + dz * dz;
      const link = T[b + 4];
      if (link > 0) {
        if (T[b + 5] < d2) {
          const w = 1 / (1 + d2);
          const w2 = w * w;
          const w3 = w2 * w;
          const m = T[b + 3];
          const mxx = T[b + 6];
          const mxy = T[b + 7];
          const mxz = T[b + 8];
          const myy = T[b + 9];
          const myz = T[b + 10];
          const mzz = T[b + 11];
          const tr = mxx + myy + mzz;
          const rx = mxx * dx + mxy * dy + mxz * dz;
          const ry = mxy * dx + myy * dy + myz * dz;
          const rz = mxz * dx + myz * dy + mzz * dz;
          const rmr = dx * rx + dy * ry + dz * rz;
          z += m * w + w2 * (4 * w * rmr - tr);
          const f = m * w2 + 12 * w2 * w2 * rmr - 2 * w3 * tr;
          fx += f * dx - 4 * w3 * rx;
          fy += f * dy - 4 * w3 * ry;
          fz += f * dz - 4 * w3 * rz;
        } else {
          for (let q = link; q < link + 8; q++) if (T[12 * q + 3] > 0) stack[sp++] = q;
        }
      } else if (T[b + 3] === 1) {
        if (link === -i - 1) continue;
        const w = 1 / (1 + d2);
        z += w;
        fx += w * w * dx;
        fy += w * w * dy;
        fz += w * w * dz;
      } else {
        for (let j = -link - 1; j >= 0; j = next[j]) {
          if (j === i) continue;
          const ex = yx - y[3 * j];
          const ey = yy - y[3 * j + 1];
          const ez = yz - y[3 * j + 2];
          const w = 1 / (1 + ex * ex + ey * ey + ez * ez);
          z += w;
          fx += w * w * ex;
          fy += w * w * ey;
          fz += w * w * ez;
        }
      }
    }
    neg[3 * i] = fx;
    neg[3 * i + 1] = fy;
    neg[3 * i + 2] = fz;
  }
  return z;
}

/**
 * P's entries above the diagonal (j > i), row by row: each pair once.
 * @param {Sparse} P
 * @param {number} n
 * @returns {Sparse}
 */
function upper(P, n) {
  const rows = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let e = P.rows[i]; e < P.rows[i + 1]; e++) if (P.cols[e] > i) c++;
    rows[i + 1] = rows[i] + c;
  }
  const cols = new Int32Array(rows[n]);
  const vals = new Float64Array(rows[n]);
  for (let i = 0, w = 0; i < n; i++) {
    for (let e = P.rows[i]; e < P.rows[i + 1]; e++) {
      if (P.cols[e] <= i) continue;
      cols[w] = P.cols[e];
      vals[w++] = P.vals[e];
    }
  }
  return { rows, cols, vals };
}

/**
 * The attractive forces: `pos[i]` = sum over j of p_ij w_ij (y_i - y_j), times
 * `exaggeration`, each pair visited once (`U`: P above its diagonal).
 * @param {Sparse} U
 * @param {Float64Array} y
 * @param {number} n
 * @param {2 | 3} dims
 * @param {number} exaggeration
 * @param {Float64Array} pos written
 */
function attraction(U, y, n, dims, exaggeration, pos) {
  const { rows, cols, vals } = U;
  pos.fill(0);
  if (dims === 2) {
    for (let i = 0; i < n; i++) {
      const yx = y[2 * i];
      const yy = y[2 * i + 1];
      let fx = 0;
      let fy = 0;
      for (let e = rows[i]; e < rows[i + 1]; e++) {
        const j = cols[e];
        const dx = yx - y[2 * j];
        const dy = yy - y[2 * j + 1];
        const f = (exaggeration * vals[e]) / (1 + dx * dx + dy * dy);
        fx += f * dx;
        fy += f * dy;
        pos[2 * j] -= f * dx;
        pos[2 * j + 1] -= f * dy;
      }
      pos[2 * i] += fx;
      pos[2 * i + 1] += fy;
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const yx = y[3 * i];
    const yy = y[3 * i + 1];
    const yz = y[3 * i + 2];
    let fx = 0;
    let fy = 0;
    let fz = 0;
    for (let e = rows[i]; e < rows[i + 1]; e++) {
      const j = cols[e];
      const dx = yx - y[3 * j];
      const dy = yy - y[3 * j + 1];
      const dz = yz - y[3 * j + 2];
      const f = (exaggeration * vals[e]) / (1 + dx * dx + dy * dy + dz * dz);
      fx += f * dx;
      fy += f * dy;
      fz += f * dz;
      pos[3 * j] -= f * dx;
      pos[3 * j + 1] -= f * dy;
      pos[3 * j + 2] -= f * dz;
    }
    pos[3 * i] += fx;
    pos[3 * i + 1] += fy;
    pos[3 * i + 2] += fz;
  }
}

// --- the optimisation ---------------------------------------------------------------------

/**
 * @typedef {Object} TSNESpec
 * @property {ArrayLike<number>} vectors (n, d) flat, finite
 * @property {number} n
 * @property {number} d
 * @property {2 | 3} [dims]  the layout's dimensions (2)
 * @property {ArrayLike<number>} init (n, dims) flat: the start, used as it is (scale a PCA
 *   to a small spread first: startProjection does)
 * @property {boolean} [continued] `init` is a formed layout: no early exaggeration, fewer steps
 * @property {number} [perplexity] (30, at most (n - 1) / 3)
 * @property {number} [theta] (0.5)
 * @property {number} [steps] iterations in all (STEPS, or CONTINUE_STEPS when continued)
 */

/**
 * A t-SNE ready to step: the neighbours and affinities are computed here.
 * @param {TSNESpec} spec
 */
export function createTSNE(spec) {
  const { vectors, n, d, dims = 2, init, continued = false, theta = THETA } = spec;
  if (n < 3) throw new Error(`t-SNE needs at least 3 items, got ${n}`);
  if (dims !== 2 && dims !== 3) throw new Error(`t-SNE lays out in 2 or 3 dimensions, not ${dims}`);
  if (vectors.length !== n * d || init.length !== dims * n) {
    throw new Error(`expected ${n} vectors of ${d} values and ${n} starting points of ${dims}`);
  }
  // few items: a perplexity their neighbours can give
  const perplexity = Math.min(spec.perplexity ?? PERPLEXITY, Math.max(1, (n - 1) / 3));
  const k = Math.min(n - 1, Math.floor(3 * perplexity));
  const t0 = performance.now();
  const knn = nearestNeighbours(vectors, n, d, k);
  const t1 = performance.now();
  const P = affinities(knn, n, perplexity);
  const U = upper(P, n);
  const t2 = performance.now();
  const total = spec.steps ?? (continued ? CONTINUE_STEPS : STEPS);
  const exaggerated = continued ? 0 : Math.min(EXAGGERATED_STEPS, total);
  const rate = Math.max(n / EXAGGERATION, 200);
  const m = n * dims;
  const y = Float64Array.from(init);
  const grad = new Float64Array(m);
  const update = new Float64Array(m);
  const gains = new Float64Array(m).fill(1);
  const neg = new Float64Array(m);
  const tree = createTree(n, dims);
  const stack = new Int32Array(1 + (MAX_DEPTH + 2) * (1 << dims));
  /** @type {ReturnType<typeof createTree> | null} for gradient() and kl(): looking leaves the steps as they are */
  let probe = null;
  let done = 0;

  /**
   * The gradient of KL(P || Q) at `y` (no factor 4) into `out`; returns Z.
   * @param {ReturnType<typeof createTree>} tr
   * @param {number} exaggeration
   * @param {number} th
   * @param {Float64Array} out
   * @param {Float64Array} rep
   */
  function gradient(tr, exaggeration, th, out, rep) {
    tr.build(y, th);
    const z = repulsion(tr, y, n, rep, stack);
    attraction(U, y, n, dims, exaggeration, out);
    for (let e = 0; e < m; e++) out[e] -= rep[e] / z;
    return z;
  }

  return {
    P,
    /** the layout, (n, dims) flat, updated in place by step() */
    y,
    total,
    /** milliseconds: the neighbour search and the affinities */
    times: { neighbours: t1 - t0, affinities: t2 - t1 },
    done: () => done,
    /**
     * Up to `count` more iterations; returns done().
     * @param {number} count
     */
    step(count) {
      for (let s = 0; s < count && done < total; s++, done++) {
        const early = done < exaggerated;
        const momentum = early ? MOMENTUM : FINAL_MOMENTUM;
        gradient(tree, early ? EXAGGERATION : 1, theta, grad, neg);
        for (let e = 0; e < m; e++) {
          const g = grad[e];
          let gain = Math.sign(g) !== Math.sign(update[e]) ? gains[e] + 0.2 : gains[e] * 0.8;
          if (gain < MIN_GAIN) gain = MIN_GAIN;
          gains[e] = gain;
          update[e] = momentum * update[e] - rate * gain * g;
          y[e] += update[e];
        }
        for (let t = 0; t < dims; t++) {
          let mean = 0;
          for (let i = 0; i < n; i++) mean += y[i * dims + t];
          mean /= n;
          for (let i = 0; i < n; i++) y[i * dims + t] -= mean;
        }
      }
      return done;
    },
    /**
     * The gradient at the current layout (not exaggerated unless asked), for the tests.
     * @param {{theta?: number, exaggeration?: number}} [options]
     */
    gradient({ theta: th = theta, exaggeration = 1 } = {}) {
      probe ??= createTree(n, dims);
      const out = new Float64Array(m);
      gradient(probe, exaggeration, th, out, new Float64Array(m));
      return out;
    },
    /**
     * KL(P || Q) at the current layout, Z estimated with the tree (`theta`; 0: exact).
     * @param {number} [th]
     */
    kl(th = theta) {
      probe ??= createTree(n, dims);
      probe.build(y, th);
      const z = repulsion(probe, y, n, new Float64Array(m), stack);
      const { rows, cols, vals } = P;
      let kl = 0;
      for (let i = 0; i < n; i++) {
        for (let e = rows[i]; e < rows[i + 1]; e++) {
          const j = cols[e];
          let d2 = 0;
          for (let t = 0; t < dims; t++) d2 += (y[i * dims + t] - y[j * dims + t]) ** 2;
          const p = vals[e];
          if (p > 0) kl += p * Math.log(p * z * (1 + d2));
        }
      }
      return kl;
    },
  };
}
