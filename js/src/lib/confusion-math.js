// @ts-check
// Pure matrix arithmetic for the confusion view (rows = true, columns = predicted).

/**
 * Dense K x K counts from sparse (flat index, count) pairs.
 * @param {number} K
 * @param {ArrayLike<number>} index
 * @param {ArrayLike<number>} value
 * @param {number} [start]
 * @param {number} [end]
 */
export function denseFromSparse(K, index, value, start = 0, end = index.length) {
  const m = new Float64Array(K * K);
  for (let i = start; i < end; i++) m[index[i]] += value[i];
  return m;
}

/** @param {Float64Array} m @param {number} K */
export function rowSums(m, K) {
  const s = new Float64Array(K);
  for (let r = 0; r < K; r++) {
    let acc = 0;
    for (let c = 0; c < K; c++) acc += m[r * K + c];
    s[r] = acc;
  }
  return s;
}

/** @param {Float64Array} m @param {number} K */
export function colSums(m, K) {
  const s = new Float64Array(K);
  for (let r = 0; r < K; r++) for (let c = 0; c < K; c++) s[c] += m[r * K + c];
  return s;
}

/**
 * Values to show: counts ("none"), fractions of each true class ("true":
 * rows sum to 1) or of each predicted class ("pred": columns sum to 1).
 * Empty rows/columns give 0.
 * @param {Float64Array} m @param {number} K @param {"none" | "true" | "pred"} mode
 */
export function normalize(m, K, mode) {
  if (mode === "none") return Float64Array.from(m);
  const sums = mode === "true" ? rowSums(m, K) : colSums(m, K);
  const out = new Float64Array(K * K);
  for (let r = 0; r < K; r++) {
    for (let c = 0; c < K; c++) {
      const s = sums[mode === "true" ? r : c];
      out[r * K + c] = s > 0 ? m[r * K + c] / s : 0;
    }
  }
  return out;
}

/** @param {Float64Array} m @param {number} K */
export function summary(m, K) {
  const rows = rowSums(m, K);
  const cols = colSums(m, K);
  let total = 0;
  let correct = 0;
  const precision = new Float64Array(K);
  const recall = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    const tp = m[k * K + k];
    correct += tp;
    total += rows[k];
    precision[k] = cols[k] > 0 ? tp / cols[k] : 0;
    recall[k] = rows[k] > 0 ? tp / rows[k] : 0;
  }
  return { total, accuracy: total > 0 ? correct / total : NaN, precision, recall, rows, cols };
}

/** Largest value, at least 1e-12 so scales never divide by zero. @param {Float64Array} v */
export function maxOf(v) {
  let mx = 0;
  for (let i = 0; i < v.length; i++) if (v[i] > mx) mx = v[i];
  return mx > 0 ? mx : 1e-12;
}

/**
 * Text for a cell value: integer counts, or percentages for fractions.
 * @param {number} v @param {"none" | "true" | "pred"} mode
 */
export function formatValue(v, mode) {
  if (mode === "none") return String(Math.round(v));
  const p = v * 100;
  if (p === 0) return "0%";
  return p >= 9.95 ? `${Math.round(p)}%` : `${p.toFixed(1)}%`;
}
