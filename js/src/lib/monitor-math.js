// @ts-check
// Pure helpers of the training monitor: curve smoothing and windows, log
// ranges, and heat maps of history rows.

/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the
 * first points are not pulled towards zero. Non-finite values are skipped
 * (the previous smoothed value repeats).
 * @param {ArrayLike<number>} values
 * @param {number} weight  0 (none) .. <1 (heavy)
 * @returns {Float64Array}
 */
export function smooth(values, weight) {
  const w = Math.min(0.999, Math.max(0, weight));
  const out = new Float64Array(values.length);
  let last = 0, debias = 0, prev = NaN;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      last = last * w + (1 - w) * v;
      debias = debias * w + (1 - w);
      prev = last / debias;
    }
    out[i] = prev;
  }
  return out;
}

/**
 * Indices [start, end) of the points whose step lies in the last `window`
 * steps (all points when window <= 0).
 * @param {ArrayLike<number>} steps  ascending
 * @param {number} window
 */
export function windowRange(steps, window) {
  const n = steps.length;
  if (window <= 0 || n === 0) return [0, n];
  const from = steps[n - 1] - window + 1;
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  return [lo, n];
}

/**
 * [min, max] of the finite positive values, widened to whole decades.
 * @param {ArrayLike<number>} values
 * @returns {[number, number] | null}
 */
export function logRange(values) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > 0 && Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo)) return null;
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  return [10 ** a, 10 ** Math.max(b, a + 1)];
}

/**
 * RGBA pixels of a heat map: `rows` is (T, C) row-major (T time rows, C
 * cells per row); the image is T pixels wide and C high, time left to right,
 * cell 0 at the top unless `flip`. `value(v)` maps a value to [0, 1] or NaN
 * (drawn as the `missing` colour).
 * @param {ArrayLike<number>} rows
 * @param {number} T
 * @param {number} C
 * @param {(v: number) => number} value
 * @param {Uint8Array} lut  256 RGB triples
 * @param {{flip?: boolean, missing?: [number, number, number]}} [options]
 * @returns {Uint8ClampedArray}
 */
export function heatPixels(rows, T, C, value, lut, options = {}) {
  const out = new Uint8ClampedArray(T * C * 4);
  const missing = options.missing || [128, 128, 128];
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      const y = options.flip ? C - 1 - c : c;
      const q = 4 * (y * T + t);
      const u = value(rows[t * C + c]);
      if (Number.isFinite(u)) {
        const k = 3 * Math.round(Math.min(1, Math.max(0, u)) * 255);
        out[q] = lut[k];
        out[q + 1] = lut[k + 1];
        out[q + 2] = lut[k + 2];
      } else {
        out[q] = missing[0];
        out[q + 1] = missing[1];
        out[q + 2] = missing[2];
      }
      out[q + 3] = 255;
    }
  }
  return out;
}

/**
 * A value -> [0, 1] map on a log scale over [lo, hi]; <= 0 gives 0, NaN/Inf give NaN.
 * @param {number} lo
 * @param {number} hi
 */
export function logScale(lo, hi) {
  const a = Math.log10(lo), b = Math.log10(hi);
  return (/** @type {number} */ v) => {
    if (!Number.isFinite(v)) return NaN;
    if (v <= 0) return 0;
    return (Math.log10(v) - a) / (b - a || 1);
  };
}

/**
 * What one column of a merged history covers, for captions.
 * @param {number} stride
 */
export function strideNote(stride) {
  return stride > 1 ? `each column is the mean of ${stride} recorded points (older ones merged to keep memory fixed)` : "one column per recorded point";
}
