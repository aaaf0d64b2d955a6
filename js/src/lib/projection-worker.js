// @ts-check
// The projector's web worker: runs one UMAP or t-SNE (lib/projection.js) at a time off
// the page's thread and posts its progress. js/build.mjs bundles this file on its own and
// inlines the text into the projector's bundle (`import code from "...?worker"`).
//
// In:  {type: "run", id, spec}  (spec: lib/projection.js's ProjectionSpec)
//      {type: "cancel"}
// Out: {type: "progress", id, phase, done, total, layout?}, {type: "done", id, layout},
//      {type: "error", id, message}; layouts are (n, spec.dims) Float32Arrays, transferred.
import { runProjection } from "./projection.js";

/** @type {any} the worker's global scope (typed as a window by the DOM library) */
const scope = self;
/** @type {AbortController | null} */
let running = null;

scope.onmessage = async (/** @type {MessageEvent} */ event) => {
  const message = event.data;
  if (message?.type === "cancel") {
    running?.abort();
    running = null;
    return;
  }
  if (message?.type !== "run") return;
  running?.abort();
  const control = new AbortController();
  running = control;
  const { id, spec } = message;
  try {
    const layout = await runProjection(spec, {
      signal: control.signal,
      onProgress: ({ phase, done, total, layout }) => {
        scope.postMessage({ type: "progress", id, phase, done, total, layout }, layout ? [layout.buffer] : []);
      },
    });
    if (layout) scope.postMessage({ type: "done", id, layout }, [layout.buffer]);
  } catch (error) {
    scope.postMessage({ type: "error", id, message: String(/** @type {any} */ (error)?.message ?? error) });
  } finally {
    if (running === control) running = null;
  }
};
