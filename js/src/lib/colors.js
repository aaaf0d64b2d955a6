// @ts-check
// Colour scales: viridis (perceptually uniform, colour-blind safe) from
// d3-scale-chromatic, sampled once into a lookup table for fast canvas fills.
import { interpolateViridis } from "d3-scale-chromatic";

/** @typedef {{lut: Uint8Array, size: number}} ColorTable */

/**
 * @param {(t: number) => string} interpolate
 * @param {number} [size]
 * @returns {ColorTable}
 */
export function colorTable(interpolate = interpolateViridis, size = 256) {
  const lut = new Uint8Array(size * 3);
  for (let i = 0; i < size; i++) {
    const [r, g, b] = parseColor(interpolate(i / (size - 1)));
    lut[3 * i] = r;
    lut[3 * i + 1] = g;
    lut[3 * i + 2] = b;
  }
  return { lut, size };
}

/**
 * "#rrggbb" or "rgb(r, g, b)" -> [r, g, b].
 * @param {string} s
 * @returns {[number, number, number]}
 */
export function parseColor(s) {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(s);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const rgb = /^rgb\(\s*(\d+),\s*(\d+),\s*(\d+)\s*\)$/.exec(s);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  throw new Error(`nbviz: cannot parse colour ${s}`);
}

/**
 * RGB of t in [0, 1] (clamped; NaN counts as 0).
 * @param {ColorTable} table
 * @param {number} t
 * @returns {[number, number, number]}
 */
export function rgbAt(table, t) {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const i = Math.round(x * (table.size - 1));
  return [table.lut[3 * i], table.lut[3 * i + 1], table.lut[3 * i + 2]];
}

/**
 * Black or white, whichever reads better on this background (WCAG luminance).
 * @param {[number, number, number]} rgb
 */
export function textColorOn(rgb) {
  const lin = rgb.map((v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  const L = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  return L > 0.179 ? "#000" : "#fff";
}

/** @param {[number, number, number]} rgb */
export function css(rgb) {
  return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
}
