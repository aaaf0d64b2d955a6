// Shared by the layout tests (not a test file itself): how well a 2-D or 3-D layout
// keeps labelled groups together.

/**
 * The share of each point's `k` nearest points in `layout` (`dims` values a point) that
 * share its label. Brute force: for the tests' few hundred points.
 * @param {ArrayLike<number>} layout
 * @param {ArrayLike<number>} labels
 * @param {number} [k]
 * @param {number} [dims]
 */
export function purity(layout, labels, k = 10, dims = 2) {
  const n = labels.length;
  let same = 0;
  for (let i = 0; i < n; i++) {
    const d = [];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let t = 0; t < dims; t++) s += (layout[dims * i + t] - layout[dims * j + t]) ** 2;
      d.push([s, j]);
    }
    d.sort((a, b) => a[0] - b[0]);
    for (let t = 0; t < k; t++) if (labels[d[t][1]] === labels[i]) same++;
  }
  return same / (n * k);
}
