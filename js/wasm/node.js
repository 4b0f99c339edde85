'use strict';
// healcache on WebAssembly, for Node (wasm-bindgen --target nodejs): the same `Cache` as the
// native package. Build with `npm run build:wasm`.
const { AsyncLocalStorage } = require('node:async_hooks');
const { makeCache, makeClock, makeWriteBehind, makePrometheusJoin, guardWasm, NOT_FOUND } = require('../../dist/cache.cjs');
const raw = require('../../bindings-wasm/pkg-node/healcache_wasm.js');

// the module exports `fetchWith` (an export named `fetch` would shadow the global in the web glue)
const backend = guardWasm({ ...raw, fetch: raw.fetchWith });
const Cache = makeCache(backend, { asyncLocalStorage: new AsyncLocalStorage() });

module.exports = {
  Cache,
  ManualClock: makeClock(backend),
  /** Refuses with code InvalidConfig: the queue's drainer needs the Node package. */
  WriteBehind: makeWriteBehind(backend, Cache),
  /** Refuses with code InvalidConfig: it needs the Node package. */
  prometheusJoin: makePrometheusJoin(backend),
  NOT_FOUND,
  /** Test hooks: panic inside the module; whether the instance trapped. */
  __testing: { panic: () => backend.__panicForTest(), isPoisoned: backend.isPoisoned },
};
