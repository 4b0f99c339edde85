// healcache on WebAssembly for edge workers and browsers (wasm-bindgen --target web).
// Initialise once per isolate, from the module's bytes or a compiled WebAssembly.Module:
//   import { initSync, Cache } from 'healcache/wasm/web';
//   initSync(wasmModuleOrBytes);          // or: await init(urlOrResponseOrBytes), or await init()
//   const cache = new Cache({ maxEntries: 10_000, ttl: 60_000 }); // module scope is fine
// Imports per runtime: docs/edge.md.
import rawInit, * as raw from '../../bindings-wasm/pkg-web/healcache_wasm.js';
import { makeCache, makeClock, makeWriteBehind, guardWasm, NOT_FOUND } from '../cache.mjs';

export { NOT_FOUND };

// the module exports `fetchWith` (an export named `fetch` would shadow the global in the glue)
const backend = guardWasm({ ...raw, fetch: raw.fetchWith });

// Edge runtimes stop a request's work once it has answered: background work handed to no
// `waitUntil` may never finish, so the core never makes a later caller wait on it.
const ready = () => raw.hostEndsRequests(true);

/** Instantiates the module synchronously from its bytes (BufferSource) or a WebAssembly.Module. */
export function initSync(module) {
  raw.initSync({ module });
  ready();
}

/**
 * Instantiates the module: from a URL, Response, bytes or WebAssembly.Module; with no argument,
 * from the .wasm file next to the glue (fetched from `import.meta.url`).
 */
export async function init(input) {
  await rawInit(input === undefined ? undefined : { module_or_path: input });
  ready();
}

// Runtimes that expose AsyncLocalStorage globally get RecursiveLoad detection too.
const ALS = globalThis.AsyncLocalStorage;
export const Cache = makeCache(backend, { asyncLocalStorage: typeof ALS === 'function' ? new ALS() : undefined });
export const ManualClock = makeClock(backend);
/** Refuses with code InvalidConfig: the queue's drainer needs the Node package. */
export const WriteBehind = makeWriteBehind(backend, Cache);
export const __testing = { panic: () => backend.__panicForTest(), isPoisoned: backend.isPoisoned };
export default init;
