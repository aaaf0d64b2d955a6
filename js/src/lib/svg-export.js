// @ts-check
// Exporting a live SVG drawing as a standalone file: styles resolved onto the copy (the
// file has no stylesheet), a PNG at a scale canvases allow, and the download. Pure parts
// (file names, scales) are node-tested in js/tests/svg-export.test.mjs.

/** Presentation properties copied from the live elements' computed styles. */
export const STYLE_PROPS = [
  "fill",
  "fill-opacity",
  "stroke",
  "stroke-width",
  "stroke-opacity",
  "stroke-dasharray",
  "opacity",
  "font-family",
  "font-size",
  "font-weight",
  "font-style",
  "text-anchor",
  "dominant-baseline",
  "paint-order",
  "stroke-linejoin",
  "display",
  "visibility",
];

/**
 * Copies the computed presentation styles of `live` and its descendants onto `clone` (a
 * deep copy of it), and drops the clone's classes. Elements with the same tag, classes,
 * anchor, parents' classes and inline style style alike: computed once.
 * @param {Element} live @param {Element} clone
 */
export function inlineStyles(live, clone) {
  const a = [live, ...live.querySelectorAll("*")];
  const b = [clone, ...clone.querySelectorAll("*")];
  /** @type {Map<string, string>} */
  const cache = new Map();
  for (let i = 0; i < a.length && i < b.length; i++) {
    const src = a[i];
    const dst = b[i];
    if (src.tagName === "title" || src.tagName === "defs" || src.tagName === "marker") continue;
    const own = /** @type {HTMLElement} */ (/** @type {unknown} */ (src)).style?.cssText || "";
    const key = `${src.tagName}|${src.getAttribute("class") || ""}|${src.getAttribute("text-anchor") || ""}|${src.parentElement?.getAttribute("class") || ""}|${src.parentElement?.parentElement?.getAttribute("class") || ""}|${own}`;
    let text = cache.get(key);
    if (text === undefined) {
      const cs = getComputedStyle(src);
      text = STYLE_PROPS.map((p) => `${p}:${cs.getPropertyValue(p)}`).join(";");
      cache.set(key, text);
    }
    dst.setAttribute("style", text);
    dst.removeAttribute("class");
  }
}

/**
 * A file name from a title: runs of characters other than letters, digits, "_", "." and
 * "-" become "_", at most 80 characters; "graph" for an empty one.
 * @param {string} title @param {string} [fallback]
 */
export function fileBase(title, fallback = "graph") {
  return (
    String(title || fallback)
      .replace(/[^\w.-]+/g, "_")
      .slice(0, 80) || fallback
  );
}

/**
 * The PNG scale of a drawing W x H: 2 for crisp text, less where canvases refuse (16,000
 * px a side, about 120 million pixels), never below 0.05.
 * @param {number} width @param {number} height
 */
export function pngScale(width, height) {
  return Math.max(0.05, Math.min(2, 16000 / width, 16000 / height, Math.sqrt(1.2e8 / (width * height))));
}

/**
 * Downloads `blob` as `name` (a hidden link inside `host`, clicked once).
 * @param {Blob} blob @param {string} name @param {HTMLElement} host
 */
export function download(blob, name, host) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  host.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * Draws SVG text onto a canvas at `pngScale` and hands the PNG blob to `done`.
 * @param {string} svgText @param {number} width @param {number} height
 * @param {(blob: Blob) => void} done
 */
export function rasterize(svgText, width, height, done) {
  const scale = pngScale(width, height);
  const img = new Image();
  const url = URL.createObjectURL(new Blob([svgText], { type: "image/svg+xml" }));
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
    ctx.scale(scale, scale);
    ctx.drawImage(img, 0, 0);
    URL.revokeObjectURL(url);
    canvas.toBlob((blob) => blob && done(blob), "image/png");
  };
  img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
}
