// healcache on WebAssembly for edge workers and browsers (wasm-bindgen --target web).
// Initialise once per isolate, from the module's bytes or a compiled WebAssembly.Module:
//   import { initSync, Cache } from 'healcache/wasm/web';
//   initSync(wasmModuleOrBytes);          // or: await init(urlOrResponseOrBytes)
//   const cache = new Cache({ maxEntries: 10_000, ttl: 60_000 });
import rawInit, * as raw from '../../bindings-wasm/pkg-web/healcache_wasm.js';
import { makeCache, makeClock, guardWasm, NOT_FOUND } from '../cache.mjs';

export { NOT_FOUND };

const backend = guardWasm(raw);

/** Instantiates the module synchronously from its bytes (BufferSource) or a WebAssembly.Module. */
export function initSync(module) {
  raw.initSync({ module });
}

/** Instantiates the module: from a URL, Response, bytes or WebAssembly.Module (default: next to the glue). */
export async function init(input) {
  await rawInit(input === undefined ? undefined : { module_or_path: input });
}

// Runtimes that expose AsyncLocalStorage globally get RecursiveLoad detection too.
const ALS = globalThis.AsyncLocalStorage;
export const Cache = makeCache(backend, { asyncLocalStorage: typeof ALS === 'function' ? new ALS() : undefined });
export const ManualClock = makeClock(backend);
export const __testing = { panic: () => backend.__panicForTest(), isPoisoned: backend.isPoisoned };
export default init;
