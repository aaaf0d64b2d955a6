// @ts-check
// Pure helpers of the Grad-CAM explorer: upsampling maps the way torch does,
// blending a coloured map over an image, outlining a mask, agreement means.

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
  const scale = n / N;
  for (let I = 0; I < N; I++) {
    const s = Math.max(0, scale * (I + 0.5) - 0.5);
    const a = Math.min(Math.floor(s), n - 1);
    i0[I] = a;
    i1[I] = a < n - 1 ? a + 1 : a;
    l[I] = s - a;
  }
  return { i0, i1, l };
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
 * @returns {string}
 */
export function emptyMapNote(method, name, layer) {
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
 * Mean over images of one agreement metric, per layer.
 * @param {(number[][][] | null)[]} perLayer  [layer] -> [target][image] -> [pointing, energy, iou]
 * @param {number} column   target column
 * @param {number} metric   0 pointing, 1 energy, 2 iou
 * @returns {(number | null)[]}
 */
export function layerMeans(perLayer, column, metric) {
  return perLayer.map((a) => {
    const rows = a?.[column];
    if (!rows || !rows.length) return null;
    let s = 0;
    for (const r of rows) s += r[metric];
    return s / rows.length;
  });
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
