// Types of healcache/wasm/web (edge workers, browsers): the same Cache, plus initialisation.
// A .d.mts: web.mjs is an ES module, and TypeScript (nodenext, Deno) reads a .d.ts in this package
// as CommonJS, where `export default init` is not the callable default import.
// Every type of the Node package, and the values this entry has: not `backend`, which only the
// Node entry exports.
export type * from '../node/index.js';
export { Cache, NOT_FOUND, ManualClock, WriteBehind, prometheusJoin } from '../node/index.js';

/** What the module can be instantiated from. */
export type WasmInput = BufferSource | WebAssembly.Module;

/** Instantiates the module synchronously from its bytes or a compiled module (once per isolate). */
export declare function initSync(module: WasmInput | { module: WasmInput }): void;

/** What `init` fetches or instantiates the module from. */
export type InitInput = WasmInput | URL | string | Response | Promise<Response>;

/** Instantiates the module from a URL, Response, bytes or module (default: the .wasm next to the glue). */
export declare function init(input?: InitInput | { module_or_path: InitInput }): Promise<void>;
export default init;

/** Test hooks of the WebAssembly build. */
export declare const __testing: {
  panic(): void;
  isPoisoned(): boolean;
};
