// @ts-check
// One heat map over one image, drawn as the Grad-CAM explorer draws it: the image and the
// map both scaled to a square canvas (the map bilinear as torch, peak-normalised), the
// map's colour weighted by its value, and a mask's outline in white.
import { blend, normalize, outline, upsample } from "./cam-math.js";

/**
 * RGBA pixels of an (H, W, 3) uint8 image scaled to size x size (bilinear, via canvases).
 * @param {ArrayLike<number>} src
 * @param {number} H
 * @param {number} W
 * @param {number} size
 */
export function imageRGBA(src, H, W, size) {
  const small = document.createElement("canvas");
  small.width = W;
  small.height = H;
  const sctx = /** @type {CanvasRenderingContext2D} */ (small.getContext("2d"));
  const img = sctx.createImageData(W, H);
  for (let p = 0; p < H * W; p++) {
    img.data[4 * p] = src[3 * p];
    img.data[4 * p + 1] = src[3 * p + 1];
    img.data[4 * p + 2] = src[3 * p + 2];
    img.data[4 * p + 3] = 255;
  }
  sctx.putImageData(img, 0, 0);
  const big = document.createElement("canvas");
  big.width = big.height = size;
  const bctx = /** @type {CanvasRenderingContext2D} */ (big.getContext("2d"));
  bctx.imageSmoothingEnabled = true;
  bctx.drawImage(small, 0, 0, size, size);
  return bctx.getImageData(0, 0, size, size).data;
}

/**
 * The RGBA frame of a map (h x w values, uint8 or float) over `base` (size x size RGBA);
 * `mask` (mh x mw, non-zero inside) adds its outline.
 * @param {Uint8ClampedArray} base
 * @param {ArrayLike<number>} raw
 * @param {number} h
 * @param {number} w
 * @param {number} size
 * @param {Uint8Array} lut
 * @param {number} opacity
 * @param {{data: ArrayLike<number>, h: number, w: number} | null} mask
 * @returns {{frame: Uint8ClampedArray, empty: boolean}}
 */
export function overlayFrame(base, raw, h, w, size, lut, opacity, mask) {
  const values = normalize(upsample(raw, h, w, size, size));
  let empty = true;
  for (let i = 0; i < raw.length; i++) if (raw[i] > 0) empty = false;
  const frame = new Uint8ClampedArray(size * size * 4);
  blend(base, values, lut, opacity, 0, frame);
  if (mask) {
    const edge = outline(mask.data, mask.h, mask.w, size, size);
    for (let p = 0; p < edge.length; p++) {
      if (edge[p]) frame[4 * p] = frame[4 * p + 1] = frame[4 * p + 2] = 255;
    }
  }
  return { frame, empty };
}
