// Bundles one ES module per widget into nbviz/static/: every src/<name>.js is a bundle
// (with the CSS it imports, as <name>.css). nbviz/static/bundles.json lists what was built:
// the wheel's build hook waits for it, and no other file lists the bundles.
// `import code from "./lib/x.js?worker"` bundles x.js on its own (a classic worker script)
// and inlines it as text: a widget's bundle stays one ES module, and the widget starts the
// worker from a Blob URL.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "esbuild";

const minify = !process.argv.includes("--dev");

/** @type {import("esbuild").Plugin} */
const workerText = {
  name: "worker-text",
  setup(b) {
    b.onResolve({ filter: /\?worker$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path.slice(0, -"?worker".length)),
      namespace: "worker-text",
    }));
    b.onLoad({ filter: /.*/, namespace: "worker-text" }, async (args) => {
      const out = await build({
        entryPoints: [args.path],
        bundle: true,
        write: false,
        format: "iife",
        target: "es2020",
        minify,
        metafile: true,
      });
      return { contents: out.outputFiles[0].text, loader: "text", watchFiles: Object.keys(out.metafile.inputs) };
    });
  },
};

const outdir = "../nbviz/static";
const names = readdirSync("src")
  .filter((f) => f.endsWith(".js"))
  .map((f) => f.slice(0, -3))
  .sort();
rmSync(outdir, { recursive: true, force: true }); // no bundle of a renamed widget lingers
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: names.map((n) => `src/${n}.js`),
  outdir,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify,
  sourcemap: process.argv.includes("--dev") ? "inline" : false,
  logLevel: "info",
  plugins: [workerText],
});
writeFileSync(`${outdir}/bundles.json`, `${JSON.stringify(names)}\n`);
