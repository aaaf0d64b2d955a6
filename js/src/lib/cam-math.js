// @ts-check
// Pure helpers of the Grad-CAM explorer: upsampling maps the way torch does,
// blending a coloured map over an image, outlining a mask, the chart's metrics,
// slicing volumes and drawing signals.

/**
 * Bilinear resize with half-pixel centres, as torch's
 * F.interpolate(mode="bilinear", align_corners=False): so the browser shows
 * the same map as nbviz.cam's res.maps().
 * @param {ArrayLike<number>} src  h * w values, row-major
 * @param {number} h
 * @param {number} w
 * @param {number} H
 * @param {number} W
 * @returns {Float32Array} H * W values
 */
export function upsample(src, h, w, H, W) {
  const out = new Float32Array(H * W);
  const xs = axis(w, W);
  const ys = axis(h, H);
  for (let Y = 0; Y < H; Y++) {
    const y0 = ys.i0[Y],
      y1 = ys.i1[Y],
      ly = ys.l[Y];
    const r0 = y0 * w,
      r1 = y1 * w;
    for (let X = 0; X < W; X++) {
      const x0 = xs.i0[X],
        x1 = xs.i1[X],
        lx = xs.l[X];
      const top = src[r0 + x0] * (1 - lx) + src[r0 + x1] * lx;
      const bottom = src[r1 + x0] * (1 - lx) + src[r1 + x1] * lx;
      out[Y * W + X] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

/** Source indices and weights along one axis (torch's area_pixel_compute_source_index). */
function axis(n, N) {
  const i0 = new Int32Array(N),
    i1 = new Int32Array(N),
    l = new Float32Array(N);
  for (let I = 0; I < N; I++) {
    const [a, b, w] = source(n, N, I);
    i0[I] = a;
    i1[I] = b;
    l[I] = w;
  }
  return { i0, i1, l };
}

/** Output index I of N along an axis of n source cells: the two cells it reads and the
 * second one's weight (half-pixel centres, as torch with align_corners=False). */
function source(n, N, I) {
  const s = Math.max(0, (n / N) * (I + 0.5) - 0.5);
  const a = Math.min(Math.floor(s), n - 1);
  return [a, a < n - 1 ? a + 1 : a, s - a];
}

/**
 * Slice z of D of a (d, h, w) map upsampled along depth: linear with half-pixel
 * centres, so that slicing then upsampling each slice bilinearly gives torch's
 * F.interpolate(mode="trilinear", align_corners=False) (it is separable).
 * @param {ArrayLike<number>} src  d * h * w values, row-major
 * @param {number} d
 * @param {number} h
 * @param {number} w
 * @param {number} z  the input's slice, 0 <= z < D
 * @param {number} D  the input's depth
 * @returns {Float32Array} h * w values
 */
export function depthSlice(src, d, h, w, z, D) {
  const n = h * w;
  const [a, b, l] = source(d, D, z);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = src[a * n + i] * (1 - l) + src[b * n + i] * l;
  return out;
}

/**
 * Multiply in place (uint8 maps sent at their peak = 255 -> [0, 1]).
 * @param {Float32Array} values
 * @param {number} factor
 */
export function scale(values, factor) {
  for (let i = 0; i < values.length; i++) values[i] *= factor;
  return values;
}

/**
 * The value range to plot channels `first .. first + count - 1` of a (C, L) block of
 * signals in, padded by 5% so that the curves do not touch the edges; a flat signal
 * gets a range around its value.
 * @param {ArrayLike<number>} data
 * @param {number} start   offset of the first value
 * @param {number} count   number of values
 * @returns {[number, number]}
 */
export function signalRange(data, start, count) {
  let lo = Infinity,
    hi = -Infinity;
  for (let i = start; i < start + count; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  const pad = hi > lo ? 0.05 * (hi - lo) : Math.max(Math.abs(lo) * 0.05, 0.5);
  return [lo - pad, hi + pad];
}

/**
 * Canvas coordinates of a signal's L samples across a width x height box: sample i at
 * the centre of its 1/L of the width (where its map value is, after upsampling), value
 * lo at the bottom and hi at the top.
 * @param {ArrayLike<number>} data
 * @param {number} start
 * @param {number} L
 * @param {[number, number]} range
 * @param {number} width
 * @param {number} height
 * @returns {Float32Array} x0, y0, x1, y1, ...
 */
export function linePoints(data, start, L, range, width, height) {
  const [lo, hi] = range;
  const out = new Float32Array(2 * L);
  for (let i = 0; i < L; i++) {
    out[2 * i] = ((i + 0.5) * width) / L;
    out[2 * i + 1] = height - ((data[start + i] - lo) / (hi - lo)) * height;
  }
  return out;
}

/**
 * Divide by the maximum in place (maps are >= 0); an all-zero map stays zero.
 * @param {Float32Array} values
 */
export function normalize(values) {
  let peak = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > peak) peak = values[i];
  if (peak > 0) for (let i = 0; i < values.length; i++) values[i] /= peak;
  return values;
}

/**
 * Blend a coloured map over an RGBA image into `out`. The colour's weight grows with
 * the value: out = image * (1 - w) + colour(value) * w with w = opacity * value, so
 * a value of 0 leaves the image as it is, weak evidence only tints it, and the map's
 * peak gets the chosen opacity. The picture is continuous in the value: a map that is
 * 0 in one place and 0.001 next to it looks the same in both (a uniform blend would
 * instead darken every pixel by the colour map's zero colour, near-black for inferno,
 * and a blend that skipped exact zeros made low-resolution maps look like bright
 * patches with dark rims). Values below `threshold` show the image: the threshold is
 * the one deliberate cut.
 * @param {Uint8ClampedArray} image  RGBA, n pixels
 * @param {Float32Array} values      n values in [0, 1]
 * @param {Uint8Array} lut           256 RGB triples
 * @param {number} opacity           weight of the colour at the map's peak
 * @param {number} threshold
 * @param {Uint8ClampedArray} out    RGBA, n pixels
 */
export function blend(image, values, lut, opacity, threshold, out) {
  const a = Math.min(1, Math.max(0, opacity));
  for (let p = 0, q = 0; p < values.length; p++, q += 4) {
    const v = Math.min(1, values[p]);
    if (v > 0 && v >= threshold) {
      const w = a * v;
      const k = 3 * Math.round(v * 255);
      out[q] = image[q] + (lut[k] - image[q]) * w;
      out[q + 1] = image[q + 1] + (lut[k + 1] - image[q + 1]) * w;
      out[q + 2] = image[q + 2] + (lut[k + 2] - image[q + 2]) * w;
    } else {
      out[q] = image[q];
      out[q + 1] = image[q + 1];
      out[q + 2] = image[q + 2];
    }
    out[q + 3] = 255;
  }
  return out;
}

/**
 * True when every value is 0 (or below): an empty map, which the view says in words.
 * @param {ArrayLike<number>} values
 */
export function isEmpty(values) {
  for (let i = 0; i < values.length; i++) if (values[i] > 0) return false;
  return true;
}

/** Curve colours of a signal's channels after the first (drawn in the text colour):
 * Paul Tol's bright scheme, readable on light and dark backgrounds. */
export const CHANNEL_COLORS = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"];

const CAM_RULE = {
  gradcam: "Grad-CAM keeps only the positive part of the gradient-weighted activations",
  "gradcam++": "Grad-CAM++ keeps only the positive part of the weighted activations",
  layercam: "Layer-CAM keeps only activations with a positive gradient",
};

/**
 * What an empty map means, in words for the person looking at it.
 * @param {string} method  a key of nbviz.cam.METHODS
 * @param {string} name    the class explained
 * @param {string} layer   the layer ("input" for input-gradient methods)
 * @param {boolean} [noGradient]  no gradient reached the layer for any input or class
 * @returns {string}
 */
export function emptyMapNote(method, name, layer, noGradient = false) {
  if (noGradient && layer !== "input") {
    return (
      `Empty map: the score of “${name}” does not depend on ${layer} (its gradient is zero there ` +
      "for every input): a branch the scores do not use, or a transformer block after which the " +
      "model reads only its class token. Choose an earlier layer."
    );
  }
  if (method === "rollout") {
    return `Empty map: attention rollout puts no weight on the patches at ${layer}.`;
  }
  const rule = /** @type {Record<string, string>} */ (CAM_RULE)[method];
  if (rule) {
    const where = layer && layer !== "input" ? ` at ${layer}` : "";
    return (
      `Empty map: no positive evidence for “${name}”${where}. ${rule}, and nothing is left. ` +
      "Common early in training; another layer or class may show more."
    );
  }
  if (method === "integrated_gradients") {
    return (
      `Empty map: no pixel adds to the score of “${name}” (integrated gradients keeps only ` +
      "positive attributions). Common early in training."
    );
  }
  return (
    `Empty map: the score of “${name}” does not change with any pixel of this image (its ` +
    "gradient is zero everywhere). Common early in training, or when every unit on the way is inactive."
  );
}

/**
 * Pixels of an S x S grid on the boundary of a binary mask given at h x w
 * (nearest-neighbour scaled): inside pixels with a 4-neighbour outside.
 * @param {ArrayLike<number>} mask  h * w, non-zero = inside
 * @param {number} h
 * @param {number} w
 * @param {number} H
 * @param {number} W
 * @returns {Uint8Array} H * W, 1 on the outline
 */
export function outline(mask, h, w, H, W) {
  const inside = new Uint8Array(H * W);
  for (let Y = 0; Y < H; Y++) {
    const y = Math.min(h - 1, Math.floor(((Y + 0.5) * h) / H));
    for (let X = 0; X < W; X++) {
      const x = Math.min(w - 1, Math.floor(((X + 0.5) * w) / W));
      inside[Y * W + X] = mask[y * w + x] ? 1 : 0;
    }
  }
  const edge = new Uint8Array(H * W);
  for (let Y = 0; Y < H; Y++) {
    for (let X = 0; X < W; X++) {
      const p = Y * W + X;
      if (!inside[p]) continue;
      const out =
        X === 0 ||
        Y === 0 ||
        X === W - 1 ||
        Y === H - 1 ||
        !inside[p - 1] ||
        !inside[p + 1] ||
        !inside[p - W] ||
        !inside[p + W];
      if (out) edge[p] = 1;
    }
  }
  return edge;
}

/**
 * @typedef {Object} Metric
 * @property {number} index   its place in each image's scores
 *   [pointing, energy, iou, deletion, insertion, randomised] (maps_index's `agreement`)
 * @property {string} label   its name in the selector
 * @property {"mask" | "faithfulness" | "sanity"} group  what it compares the map with
 * @property {"higher" | "lower" | "zero"} better  which way is better ("zero": nearest 0)
 * @property {[number, number]} range  the values it can take (the chart's y axis)
 */

/** The chart's metrics, in the selector's order. @type {Metric[]} */
export const METRICS = [
  { index: 1, label: "energy in mask", group: "mask", better: "higher", range: [0, 1] },
  { index: 0, label: "pointing game", group: "mask", better: "higher", range: [0, 1] },
  { index: 2, label: "IoU of top 15%", group: "mask", better: "higher", range: [0, 1] },
  { index: 3, label: "deletion AUC", group: "faithfulness", better: "lower", range: [0, 1] },
  { index: 4, label: "insertion AUC", group: "faithfulness", better: "higher", range: [0, 1] },
  // Spearman's rho: -1..1; a map that still looks the same on a randomised model (near 1)
  // does not show what the model learned; near 0 it does.
  { index: 5, label: "similarity to a randomised model", group: "sanity", better: "zero", range: [-1, 1] },
];

/**
 * The metric with this index (the first one for an unknown index).
 * @param {number} index
 * @returns {Metric}
 */
export function metricOf(index) {
  return METRICS.find((m) => m.index === index) ?? METRICS[0];
}

/**
 * The metrics that were computed: those with a value for some image of some layer (any
 * method, so that the selector does not change with the method), or, for the
 * faithfulness metrics, every one of them when `faithfulness` says they were computed
 * (the randomised similarity can be null for every image: constant maps).
 * @param {(( number | null)[][][] | null)[]} perLayer  [entry] -> [target][image] -> scores
 * @param {boolean} faithfulness  faithfulness_settings is set
 * @returns {Metric[]}
 */
export function availableMetrics(perLayer, faithfulness = false) {
  return METRICS.filter((m) => {
    if (faithfulness && m.group !== "mask") return true;
    return perLayer.some((a) => a?.some((rows) => rows.some((r) => r?.[m.index] != null)));
  });
}

/**
 * Mean over images of one metric, per layer; images without a value (null: not computed,
 * or undefined, like the rank correlation of a constant map) are left out, and a layer
 * with none gets null.
 * @param {((number | null)[][][] | null)[]} perLayer  [layer] -> [target][image] -> scores
 * @param {number} column   target column
 * @param {number} metric   index in the scores (0 pointing, 1 energy, 2 iou, 3 deletion,
 *   4 insertion, 5 randomised)
 * @returns {(number | null)[]}
 */
export function layerMeans(perLayer, column, metric) {
  return perLayer.map((a) => {
    const rows = a?.[column];
    if (!rows || !rows.length) return null;
    let s = 0,
      n = 0;
    for (const r of rows) {
      const v = r?.[metric];
      if (v == null || !Number.isFinite(v)) continue;
      s += v;
      n++;
    }
    return n ? s / n : null;
  });
}

/**
 * The best of the layers' means for a metric: the highest, the lowest, or the one nearest
 * 0; -1 when none has a value. Ties: the first.
 * @param {(number | null)[]} means
 * @param {Metric["better"]} better
 */
export function bestLayer(means, better) {
  const score = (/** @type {number} */ v) => (better === "higher" ? v : better === "lower" ? -v : -Math.abs(v));
  let best = -1;
  means.forEach((m, i) => {
    if (m != null && (best < 0 || score(m) > score(/** @type {number} */ (means[best])))) best = i;
  });
  return best;
}

/**
 * The chart's y axis for a metric: its range and the ticks to label.
 * @param {Metric} metric
 * @returns {{lo: number, hi: number, ticks: number[], base: number}}  base: where bars start
 */
export function metricAxis(metric) {
  const [lo, hi] = metric.range;
  const ticks = lo < 0 ? [lo, lo / 2, 0, hi / 2, hi] : [lo, (lo + hi) / 2, hi];
  return { lo, hi, ticks, base: Math.min(hi, Math.max(lo, 0)) };
}

/**
 * The y coordinate of value v on an axis drawn from y = top (hi) to y = bottom (lo); values
 * outside the range are clamped to it.
 * @param {{lo: number, hi: number}} axis
 * @param {number} v
 * @param {number} top
 * @param {number} bottom
 */
export function axisY(axis, v, top, bottom) {
  const c = Math.min(axis.hi, Math.max(axis.lo, v));
  return top + ((axis.hi - c) / (axis.hi - axis.lo)) * (bottom - top);
}

/** @param {Metric["better"]} better */
export function betterText(better) {
  return better === "higher" ? "higher is better" : better === "lower" ? "lower is better" : "nearer 0 is better";
}

/**
 * The words before the metric selector: what the metric compares the map with.
 * @param {Metric} metric
 */
export function chartTitle(metric) {
  if (metric.group === "mask") return "agreement with the human mask, per layer:";
  if (metric.group === "faithfulness") return "faithfulness to the model, per layer:";
  return "sanity check, per layer:";
}

/**
 * What the metric measures, in a sentence under the chart (empty for the mask metrics,
 * whose names say it), with the settings it was computed with (faithfulness_settings).
 * @param {Metric} metric
 * @param {{baseline?: string, steps?: number, score?: string, seed?: number} | null} settings
 */
export function metricNote(metric, settings) {
  const s = settings || {};
  const score = s.score || "softmax probability of the explained class";
  const steps = `in ${s.steps ?? "?"} steps`;
  const baseline = `Baseline: ${s.baseline || "?"}.`;
  if (metric.index === 3)
    return (
      `Deletion AUC: area under the ${score} as the map's top pixels, highest first, are replaced ` +
      `by the baseline ${steps}. Low: the map found what the model uses. ${baseline}`
    );
  if (metric.index === 4)
    return (
      `Insertion AUC: area under the ${score} as the map's top pixels, highest first, are revealed ` +
      `on the baseline ${steps}. High: the map found what the model uses. ${baseline}`
    );
  if (metric.index === 5)
    return (
      "Spearman rank correlation between the map and the same method's, layer's and class's map " +
      `on a copy of the model with every layer that has parameters re-initialised (seed ${s.seed ?? 0}). Near 0: the ` +
      "map depends on what the model learned (a sanity check passed); near 1: it would look the " +
      "same untrained. No value where a map is constant."
    );
  return "";
}

/**
 * A metric's value as the chart writes it.
 * @param {number | null | undefined} v
 */
export function formatScore(v) {
  return v == null || !Number.isFinite(v) ? "n/a" : v.toFixed(2);
}

/**
 * The entries of the class selector: the target columns with distinct classes,
 * the true label's column marked. Columns 0..k-1 are the top-k predictions;
 * column k (when labels were given) is the true class.
 * @param {ArrayLike<number>} targets  (N, T) row-major
 * @param {ArrayLike<number>} probs    (N, T)
 * @param {number} T
 * @param {number} image
 * @param {number} k                   number of predicted columns
 * @param {number | null} label        true class of this image, if known
 * @returns {{column: number, cls: number, prob: number, rank: number | null, isTrue: boolean}[]}
 */
export function classChoices(targets, probs, T, image, k, label) {
  /** @type {{column: number, cls: number, prob: number, rank: number | null, isTrue: boolean}[]} */
  const out = [];
  for (let c = 0; c < T; c++) {
    const cls = targets[image * T + c];
    const prob = probs[image * T + c];
    const predicted = c < k;
    const seen = out.find((o) => o.cls === cls);
    if (seen) continue; // the true class is among the top k: one entry, marked
    out.push({ column: c, cls, prob, rank: predicted ? c + 1 : null, isTrue: label != null && cls === label });
  }
  return out;
}
