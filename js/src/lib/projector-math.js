// @ts-check
// Pure helpers of the projector (js/src/projector.js): frame coordinates into the
// scatterplot's [-1, 1] space, the values each colouring draws, class search.

/**
 * The box around every finite point of every frame: one scale for all frames, so
 * moving the epoch slider moves points and never rescales the view.
 * @param {ArrayLike<number>} coords (F, N, 2) flat
 * @returns {{x0: number, y0: number, x1: number, y1: number}}
 */
export function bounds(coords) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let i = 0; i + 1 < coords.length; i += 2) {
    const x = coords[i];
    const y = coords[i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (x0 > x1) return { x0: -1, y0: -1, x1: 1, y1: 1 };
  return { x0, y0, x1, y1 };
}

/**
 * One frame's points, centred, in [-aspect, aspect] x [-1, 1] less a margin (the
 * scatterplot's view of a canvas `aspect` times wider than high), the same factor on
 * both axes; and the points that are shown (finite in this frame).
 * @param {ArrayLike<number>} coords (F, N, 2) flat
 * @param {number} n
 * @param {number} frame
 * @param {{x0: number, y0: number, x1: number, y1: number}} box
 * @param {number} [aspect] the canvas's width over its height
 * @param {number} [margin]
 */
export function frameXY(coords, n, frame, box, aspect = 1, margin = 0.9) {
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  /** @type {number[]} */
  const shown = [];
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  const hw = Math.max(box.x1 - box.x0, 1e-12) / 2;
  const hh = Math.max(box.y1 - box.y0, 1e-12) / 2;
  const k = margin * Math.min(aspect / hw, 1 / hh);
  const base = frame * n * 2;
  for (let i = 0; i < n; i++) {
    const px = coords[base + 2 * i];
    const py = coords[base + 2 * i + 1];
    if (Number.isFinite(px) && Number.isFinite(py)) {
      x[i] = (px - cx) * k;
      y[i] = (py - cy) * k;
      shown.push(i);
    }
  }
  return { x, y, shown };
}

/**
 * The sphere that frames the finite points of every frame of (F, N, 3) coordinates: its
 * centre and a radius that holds the cloud, not its farthest stragglers (the smaller of
 * the farthest point's distance and 2.5 times the root-mean-square distance: a point or
 * two may sit outside, a wheel turn away). One sphere for all frames and all turns:
 * turning the cloud or moving the epoch slider never rescales the view.
 * @param {ArrayLike<number>} coords (F, N, 3) flat
 * @returns {{cx: number, cy: number, cz: number, r: number}}
 */
export function sphere(coords) {
  let m = 0;
  let cx = 0;
  let cy = 0;
  let cz = 0;
  const finite = (/** @type {number} */ i) =>
    Number.isFinite(coords[i]) && Number.isFinite(coords[i + 1]) && Number.isFinite(coords[i + 2]);
  for (let i = 0; i + 2 < coords.length; i += 3) {
    if (!finite(i)) continue;
    m++;
    cx += coords[i];
    cy += coords[i + 1];
    cz += coords[i + 2];
  }
  if (m === 0) return { cx: 0, cy: 0, cz: 0, r: 1 };
  cx /= m;
  cy /= m;
  cz /= m;
  let far = 0;
  let squares = 0;
  for (let i = 0; i + 2 < coords.length; i += 3) {
    if (!finite(i)) continue;
    const d2 = (coords[i] - cx) ** 2 + (coords[i + 1] - cy) ** 2 + (coords[i + 2] - cz) ** 2;
    far = Math.max(far, d2);
    squares += d2;
  }
  const r = Math.min(Math.sqrt(far), 2.5 * Math.sqrt(squares / m));
  return { cx, cy, cz, r: r || 1 };
}

/**
 * The rotation of the 3-D view: turned by `yaw` about the vertical axis, then tilted by
 * `pitch` about the horizontal one (radians). Row-major 3 x 3.
 * @param {number} yaw
 * @param {number} pitch
 */
export function rotation(yaw, pitch) {
  const cy = Math.cos(yaw);
  const sy = Math.sin(yaw);
  const cp = Math.cos(pitch);
  const sp = Math.sin(pitch);
  // pitch (about x) times yaw (about y)
  return [cy, 0, sy, sp * sy, cp, -sp * cy, -cp * sy, sp, cp * cy];
}

/**
 * One frame's 3-D points seen through `rot` (orthographic), in the scatterplot's
 * [-aspect, aspect] x [-1, 1] less a margin, the sphere of all frames filling the
 * height; `depth` in [0, 1] (1: nearest the viewer) for depth cueing; and the points
 * shown (finite in this frame).
 * @param {ArrayLike<number>} coords (F, N, 3) flat
 * @param {number} n
 * @param {number} frame
 * @param {{cx: number, cy: number, cz: number, r: number}} ball
 * @param {number[]} rot row-major 3 x 3 (`rotation`)
 * @param {number} [aspect]
 * @param {number} [margin]
 */
export function frameXY3(coords, n, frame, ball, rot, aspect = 1, margin = 0.9) {
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  const depth = new Float32Array(n);
  /** @type {number[]} */
  const shown = [];
  const k = (margin * Math.min(aspect, 1)) / ball.r;
  const base = frame * n * 3;
  for (let i = 0; i < n; i++) {
    const px = coords[base + 3 * i] - ball.cx;
    const py = coords[base + 3 * i + 1] - ball.cy;
    const pz = coords[base + 3 * i + 2] - ball.cz;
    if (!Number.isFinite(px) || !Number.isFinite(py) || !Number.isFinite(pz)) continue;
    x[i] = (rot[0] * px + rot[1] * py + rot[2] * pz) * k;
    y[i] = (rot[3] * px + rot[4] * py + rot[5] * pz) * k;
    depth[i] = Math.min(1, Math.max(0, 0.5 + (rot[6] * px + rot[7] * py + rot[8] * pz) / (2 * ball.r)));
    shown.push(i);
  }
  return { x, y, depth, shown };
}

/** What a colouring needs: `categorical` colours by class index, `continuous` 0..1. */
export const COLOR_MODES = /** @type {const} */ ([
  ["true", "true class"],
  ["predicted", "predicted class"],
  ["correct", "correct / wrong"],
  ["confidence", "confidence"],
  ["loss", "loss"],
]);

/**
 * The value of each point for a colouring, and how it is read: class indices
 * ("categorical"), or numbers in [0, 1] ("continuous"). Null when the data for it is
 * missing (no labels, no class scores).
 * @param {string} mode
 * @param {{labels: ArrayLike<number> | null, predicted: ArrayLike<number> | null,
 *   confidence: ArrayLike<number> | null, loss: ArrayLike<number> | null}} data
 *   labels (N,), the others (F, N) flat
 * @param {number} n
 * @param {number} frame
 * @returns {{values: Float32Array, type: "categorical" | "continuous", max: number} | null}
 */
export function colorValues(mode, data, n, frame) {
  const values = new Float32Array(n);
  const at = frame * n;
  const { labels, predicted, confidence, loss } = data;
  if (mode === "true" || mode === "predicted") {
    const src = mode === "true" ? labels : predicted;
    if (!src) return null;
    const off = mode === "true" ? 0 : at;
    for (let i = 0; i < n; i++) values[i] = Math.max(0, src[off + i]);
    return { values, type: "categorical", max: 1 };
  }
  if (mode === "correct") {
    if (!labels || !predicted) return null;
    for (let i = 0; i < n; i++) values[i] = predicted[at + i] === labels[i] ? 1 : 0;
    return { values, type: "categorical", max: 1 };
  }
  const src = mode === "confidence" ? confidence : mode === "loss" ? loss : null;
  if (!src) return null;
  let max = 0;
  for (let i = 0; i < n; i++) if (Number.isFinite(src[at + i]) && src[at + i] > max) max = src[at + i];
  const scale = mode === "loss" ? max || 1 : 1; // confidence is already 0..1
  for (let i = 0; i < n; i++) {
    const v = src[at + i] / scale;
    values[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
  }
  return { values, type: "continuous", max: scale };
}

/**
 * The classes whose name holds `query` (case-insensitive; an exact name first).
 * @param {string[]} classes
 * @param {string} query
 * @returns {number[]}
 */
export function matchClasses(classes, query) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const exact = classes.findIndex((c) => c.toLowerCase() === q);
  if (exact >= 0) return [exact];
  const out = [];
  for (let i = 0; i < classes.length; i++) if (classes[i].toLowerCase().includes(q)) out.push(i);
  return out;
}

/**
 * The items whose true class (or, without labels, predicted class in `frame`) is one
 * of `wanted`, among `shown`.
 * @param {number[]} wanted
 * @param {ArrayLike<number> | null} labels (N,)
 * @param {ArrayLike<number> | null} predicted (F, N) flat
 * @param {number} n
 * @param {number} frame
 * @param {number[]} shown
 */
export function itemsOfClasses(wanted, labels, predicted, n, frame, shown) {
  const set = new Set(wanted);
  const src = labels ?? predicted;
  if (!src) return [];
  const off = labels ? 0 : frame * n;
  return shown.filter((i) => set.has(src[off + i]));
}

/**
 * An item's nearest items in `frame`, nearest first (no padding).
 * @param {ArrayLike<number>} near (F, N, k) flat
 * @param {number} n
 * @param {number} k
 * @param {number} frame
 * @param {number} item
 */
export function neighboursOf(near, n, k, frame, item) {
  const out = [];
  const base = (frame * n + item) * k;
  for (let j = 0; j < k; j++) if (near[base + j] >= 0) out.push(near[base + j]);
  return out;
}

/**
 * The i-th of `count` categorical colours: Tableau 10, then golden-angle hues.
 * @param {number} count
 * @returns {string[]}
 */
export function palette(count) {
  const base = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
  ];
  const out = [];
  for (let i = 0; i < Math.max(1, count); i++) {
    out.push(i < base.length ? base[i] : hsl((i * 137.508) % 360, 55, 55));
  }
  return out;
}

/** @param {number} h @param {number} s @param {number} l */
function hsl(h, s, l) {
  const a = (s / 100) * Math.min(l / 100, 1 - l / 100);
  /** @param {number} n */
  const f = (n) => {
    const k = (n + h / 30) % 12;
    const c = l / 100 - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(255 * c)
      .toString(16)
      .padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}
