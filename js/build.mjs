// Bundles one ES module per widget into nbviz/static/: every src/<name>.js is a bundle
// (with the CSS it imports, as <name>.css). nbviz/static/bundles.json lists what was built:
// the wheel's build hook waits for it, and no other file lists the bundles.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

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
  minify: !process.argv.includes("--dev"),
  sourcemap: process.argv.includes("--dev") ? "inline" : false,
  logLevel: "info",
});
writeFileSync(`${outdir}/bundles.json`, `${JSON.stringify(names)}\n`);
