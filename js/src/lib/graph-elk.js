// @ts-check
// ELK for the layer graph: in a web worker, so that the page keeps panning, zooming and
// answering clicks on the previous picture while a big graph is laid out. The worker's
// script comes as text (js/build.mjs's `?worker` import); where a page cannot start a
// worker from a Blob URL, the same script runs in the page behind a worker-like object.
import ELK from "elkjs/lib/elk-api.js";

/**
 * The worker script run in this page: messages go through timers, as they would
 * between threads (never synchronously inside the caller's call).
 * @param {string} code elk-worker's script
 */
export function inPageWorker(code) {
  /** @type {{onmessage: ((ev: {data: any}) => void) | null, postMessage: (msg: any) => void}} */
  const scope = { onmessage: null, postMessage: (msg) => setTimeout(() => w.onmessage?.({ data: msg }), 0) };
  /** @type {{onmessage: ((ev: {data: any}) => void) | null, postMessage: (msg: any) => void, terminate: () => void}} */
  const w = {
    onmessage: null,
    postMessage: (msg) => setTimeout(() => scope.onmessage?.({ data: msg }), 0),
    terminate: () => {
      scope.onmessage = null;
    },
  };
  // the script reads `self` and checks that no `document` is around, as in a worker
  new Function("self", "document", "window", "module", "exports", code)(
    scope,
    undefined,
    undefined,
    undefined,
    undefined,
  );
  return w;
}

/**
 * A layout function over one ELK: in a worker when the page allows one, else in the page.
 * If the worker fails (a page's content policy can refuse it after it was made), the
 * layout in flight and all later ones run in the page.
 * @param {string} code elk-worker's script
 * @param {{worker?: boolean}} [opts] worker: false runs in the page from the start
 * @returns {{layout: (graph: any) => Promise<any>, where: () => "worker" | "page"}}
 */
export function elkLayout(code, opts = {}) {
  /** @type {any} */
  let elk = null;
  /** @type {"worker" | "page"} */
  let where = "page";
  /** @type {(err: unknown) => void} */
  let fail = () => undefined;
  const failed = new Promise((_, reject) => {
    fail = reject;
  });
  failed.catch(() => undefined);
  const inPage = () => {
    where = "page";
    elk = new ELK({ workerFactory: () => /** @type {any} */ (inPageWorker(code)) });
  };
  if (opts.worker !== false && typeof Worker !== "undefined" && typeof URL?.createObjectURL === "function") {
    try {
      const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
      elk = new ELK({
        workerFactory: () => {
          const w = new Worker(url);
          w.addEventListener("error", (ev) => fail(ev));
          return w;
        },
      });
      where = "worker";
    } catch {
      inPage();
    }
  } else inPage();
  return {
    /** @param {any} graph */
    async layout(graph) {
      if (where === "page") return elk.layout(graph);
      const copy = structuredClone(graph); // a retry in the page starts from the same graph
      try {
        return await Promise.race([elk.layout(graph), failed]);
      } catch (err) {
        if (where !== "worker" || !(err instanceof Event)) throw err;
        elk.terminateWorker?.();
        inPage();
        return elk.layout(copy);
      }
    },
    where: () => where,
  };
}
