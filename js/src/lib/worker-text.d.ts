// A worker's script bundled on its own and imported as text (js/build.mjs's worker-text plugin).
declare module "*?worker" {
  const code: string;
  export default code;
}
