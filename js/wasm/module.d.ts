// Types of healcache/wasm/healcache_wasm_bg.wasm, as edge bundlers import it (workerd and
// wrangler, Vercel/Next edge, Deno's `import source`): a compiled module for `initSync`.
declare const module: WebAssembly.Module;
export default module;
