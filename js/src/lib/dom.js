// @ts-check
// Small DOM helpers shared by the widgets. Strings always become text nodes:
// user text (class names, module names) is never parsed as HTML.

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {string | Node | (string | Node)[]} [children]
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  const list = Array.isArray(children) ? children : [children];
  for (const child of list) node.append(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element with attributes (and, given, text: a text node, never markup).
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 * @returns {SVGElement}
 */
export function svgEl(tag, attrs = {}, text) {
  const node = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Theme colours for canvas drawing, read from the widget's CSS custom
 * properties (which follow JupyterLab's variables, with fallbacks).
 * @param {HTMLElement} root
 */
export function themeColors(root) {
  const style = getComputedStyle(root);
  /** @param {string} name @param {string} fallback */
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    foreground: read("--nbviz-fg", "#222"),
    muted: read("--nbviz-muted", "#666"),
    background: read("--nbviz-bg", "#fff"),
    accent: read("--nbviz-accent", "#1976d2"),
    track: read("--nbviz-track", "#eee"),
    font: style.fontFamily || "sans-serif",
  };
}

/**
 * Calls back when the host switches theme (JupyterLab sets data attributes
 * on <body>; VS Code and Colab switch classes). Returns a function that stops.
 * @param {() => void} callback
 */
export function watchTheme(callback) {
  const observer = new MutationObserver(callback);
  observer.observe(document.body, {
    attributes: true,
    attributeFilter: ["class", "data-jp-theme-light", "data-jp-theme-name"],
  });
  const media = window.matchMedia?.("(prefers-color-scheme: dark)");
  media?.addEventListener?.("change", callback);
  return () => {
    observer.disconnect();
    media?.removeEventListener?.("change", callback);
  };
}

/**
 * A function that runs `fn` once, at the next `defer` (an animation frame by default),
 * however often it is called before then: several traits change in one message and
 * each change asks for a redraw.
 * @param {() => void} fn
 * @param {(run: () => void) => void} [defer]
 * @returns {() => void}
 */
export function coalesce(fn, defer = requestAnimationFrame) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    defer(() => {
      queued = false;
      fn();
    });
  };
}

/**
 * `coalesce` for an async `fn` (a layout): runs never overlap, and calls made while one
 * runs make exactly one more run after it, so the last request is always served.
 * @param {() => Promise<void>} fn
 * @param {(run: () => void) => void} [defer]
 * @returns {() => void}
 */
export function coalesceAsync(fn, defer = requestAnimationFrame) {
  let queued = false;
  let running = false;
  let dirty = false;
  const request = () => {
    dirty = true;
    if (queued || running) return; // the run in progress asks again when done
    queued = true;
    defer(async () => {
      queued = false;
      dirty = false;
      running = true;
      try {
        await fn();
      } finally {
        running = false;
        if (dirty) request();
      }
    });
  };
  return request;
}
