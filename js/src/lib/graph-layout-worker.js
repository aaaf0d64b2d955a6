// ELK's layout in a web worker (the layer graph, js/src/graph.js). Bundled on its own and
// inlined as text by js/build.mjs (`import code from "./lib/graph-layout-worker.js?worker"`);
// elk-worker answers elk-api's messages on `self`.
import "elkjs/lib/elk-worker.min.js";
