// healcache on WebAssembly for edge workers and browsers (wasm-bindgen --target web).
// Initialise once per isolate, from the module's bytes or a compiled WebAssembly.Module:
//   import { initSync, Cache } from 'healcache/wasm/web';
//   initSync(wasmModuleOrBytes);          // or: await init(urlOrResponseOrBytes), or await init()
//   const cache = new Cache({ maxEntries: 10_000, ttl: 60_000 }); // module scope is fine
// Imports per runtime: docs/edge.md.
import rawInit, * as raw from '../../bindings-wasm/pkg-web/healcache_wasm.js';
import { makeCache, makeClock, makeWriteBehind, makePrometheusJoin, guardWasm, NOT_FOUND } from '../cache.mjs';

export { NOT_FOUND };

// Until the module is instantiated every call is refused with HEALCACHE_NOT_INITIALIZED (the
// glue's own functions would fail with a bare TypeError).
const backend = guardWasm({ ...raw, fetch: raw.fetchWith }, { initialized: false });

// Edge runtimes stop a request's work once it has answered: background work handed to no
// `waitUntil` may never finish, so the core never makes a later caller wait on it.
const ready = () => {
  backend.initialized();
  raw.hostEndsRequests(true);
};

// wasm-bindgen's own argument object (`{ module }`, `{ module_or_path }`), as the wire module
// takes it: passed on as given. Anything else is the input itself.
const isOptions = (x, name) =>
  x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype && name in x;

/** Instantiates the module synchronously from its bytes (BufferSource) or a WebAssembly.Module. */
export function initSync(module) {
  raw.initSync(isOptions(module, 'module') ? module : { module });
  ready();
}

/**
 * Instantiates the module: from a URL, Response, bytes or WebAssembly.Module; with no argument,
 * from the .wasm file next to the glue (fetched from `import.meta.url`).
 */
export async function init(input) {
  await rawInit(input === undefined || isOptions(input, 'module_or_path') ? input : { module_or_path: input });
  ready();
}

// AsyncLocalStorage carries the chain of loads a call is nested in (RecursiveLoad detection):
// global on Vercel/Next edge, `node:async_hooks` on Deno, Node and workerd with nodejs_compat or
// nodejs_als. Elsewhere (a browser, workerd without those flags) there is none, and a loader that
// asks for its own key waits on itself until `loadTimeout` (docs/edge.md). The specifier is not a
// literal, so bundlers for hosts without `node:` modules leave the import to run time, where it fails.
const ASYNC_HOOKS = 'node:async_hooks';
const ALS =
  globalThis.AsyncLocalStorage ??
  (await import(/* webpackIgnore: true */ /* @vite-ignore */ ASYNC_HOOKS).then(
    (m) => m.AsyncLocalStorage,
    () => undefined,
  ));
export const Cache = makeCache(backend, { asyncLocalStorage: typeof ALS === 'function' ? new ALS() : undefined });
export const ManualClock = makeClock(backend);
/** Refuses with code InvalidConfig: the queue's drainer needs the Node package. */
export const WriteBehind = makeWriteBehind(backend, Cache);
/** Refuses with code InvalidConfig: it needs the Node package. */
export const prometheusJoin = makePrometheusJoin(backend);
export const __testing = { panic: () => backend.__panicForTest(), isPoisoned: backend.isPoisoned };
export default init;
