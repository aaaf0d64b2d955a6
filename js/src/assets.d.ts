// CSS imported for its side effect: esbuild bundles it beside the widget's module.
declare module "*.css";
