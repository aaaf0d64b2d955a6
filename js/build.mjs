// Bundles one ES module per widget (src/<widget>.js) into nbviz/static/.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const entries = readdirSync("src").filter((f) => f.endsWith(".js")).map((f) => `src/${f}`);
await build({
  entryPoints: entries,
  outdir: "../nbviz/static",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !process.argv.includes("--dev"),
  sourcemap: process.argv.includes("--dev") ? "inline" : false,
  logLevel: "info",
});
