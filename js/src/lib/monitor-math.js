// @ts-check
// Pure helpers of the training monitor: curve smoothing and windows, log
// ranges, and heat maps of history rows.

/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the
 * first points are not pulled towards zero. A non-finite value gives NaN (a
 * gap in the drawn line, never a plateau); the average carries on from the
 * last finite values.
 * @param {ArrayLike<number>} values
 * @param {number} weight  0 (none) .. <1 (heavy)
 * @returns {Float64Array}
 */
export function smooth(values, weight) {
  const w = Math.min(0.999, Math.max(0, weight));
  const out = new Float64Array(values.length);
  let last = 0,
    debias = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      last = last * w + (1 - w) * v;
      debias = debias * w + (1 - w);
      out[i] = last / debias;
    } else out[i] = NaN;
  }
  return out;
}

/**
 * [min, max] of the finite values of several arrays (a loop: spreading a long run's
 * steps into Math.min would overflow the call stack), or null when there is none.
 * @param {ArrayLike<number>[]} arrays
 * @returns {[number, number] | null}
 */
export function extent(arrays) {
  let lo = Infinity,
    hi = -Infinity;
  for (const values of arrays) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * A d3-style "nice" tick step for [lo, hi] with about `count` ticks.
 * @param {number} lo
 * @param {number} hi
 * @param {number} count
 */
export function tickStep(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const error = raw / power;
  return power * (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1);
}

/**
 * The axis range of a curve: the finite values' extent, padded by 5 % of the span,
 * never past 0 for values that are all >= 0 nor past 1 for values that are all in
 * [0, 1] (a loss axis does not go negative, an accuracy axis stops at 1). null when
 * there is no finite value.
 * @param {ArrayLike<number>[]} series
 * @returns {[number, number] | null}
 */
export function valueRange(series) {
  const found = extent(series);
  if (!found) return null;
  const [lo, hi] = found;
  const pad = hi > lo ? 0.05 * (hi - lo) : Math.abs(hi) * 0.05 || 0.5;
  let a = lo - pad,
    b = hi + pad;
  if (lo >= 0) a = Math.max(0, a);
  if (lo >= 0 && hi <= 1 && hi > lo) b = Math.min(1, b);
  return [a, b];
}

/**
 * A d3 format for ticks `step` apart around `magnitude` whose labels are all
 * different and short: fixed decimals for ordinary numbers, exponents for tiny
 * or huge ones.
 * @param {number} step
 * @param {number} magnitude  the largest |value| on the axis
 */
export function tickFormat(step, magnitude) {
  if (!(step > 0) || !Number.isFinite(step)) return ".3~g";
  if (magnitude >= 1e5 || magnitude < 1e-3) {
    const digits = Math.max(0, Math.ceil(Math.log10(magnitude / step)) - 1);
    return `.${Math.min(6, digits)}e`;
  }
  return `.${Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)))}f`;
}

/**
 * Tick values at multiples of a nice step inside [lo, hi] (about `count` of them).
 * `whole`: steps of at least 1, for the step axis (a 6-step run reads 0 1 2 3 4 5).
 * @param {number} lo
 * @param {number} hi
 * @param {{count?: number, whole?: boolean}} [options]
 * @returns {number[]}
 */
export function niceTicks(lo, hi, { count = 5, whole = false } = {}) {
  if (!(hi >= lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  const step = whole ? Math.max(1, tickStep(lo, hi, count)) : tickStep(lo, hi, count);
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(+(k * step).toPrecision(12));
  return out;
}

/**
 * The curves the log toggle applies to: losses and other unbounded error measures
 * (by name), else every curve whose positive values span more than a decade. A
 * bounded metric such as accuracy keeps its linear axis.
 * @param {Record<string, ArrayLike<number>>} series  name -> values
 * @returns {string[]}
 */
export function logCurves(series) {
  const names = Object.keys(series);
  const lossy = names.filter((n) => /loss|perplexity|ppl|error|mse|mae|nll/i.test(n));
  if (lossy.length) return lossy;
  return names.filter((n) => {
    const r = logRange(series[n]);
    return r !== null && r[1] / r[0] > 10;
  });
}

/**
 * Steps whose value is not finite (NaN or +-Inf): drawn as markers, left out of the lines.
 * @param {ArrayLike<number>} steps
 * @param {ArrayLike<number>} values
 * @returns {number[]}
 */
export function nonFiniteSteps(steps, values) {
  const out = [];
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) out.push(steps[i]);
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
  let lo = 0,
    hi = n;
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
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > 0 && Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (!Number.isFinite(lo)) return null;
  const a = Math.floor(Math.log10(lo)),
    b = Math.ceil(Math.log10(hi));
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
  const a = Math.log10(lo),
    b = Math.log10(hi);
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
  return stride > 1
    ? `each column is the mean of ${stride} recorded points (older ones merged to keep memory fixed)`
    : "one column per recorded point";
}
