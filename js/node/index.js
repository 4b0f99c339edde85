'use strict';
// healcache for Node.js: the shared JS wrapper (js/cache.mjs) over the napi-rs addon
// (bindings-node). Build the addon with `npm run build`.
const { AsyncLocalStorage } = require('node:async_hooks');
const { makeCache, NOT_FOUND } = require('../../dist/cache.cjs');

let native;
try {
  native = require('../../dist/healcache.node');
} catch (e) {
  throw new Error(`healcache: the native addon is not built; run \`npm run build\` (${e.message})`);
}

// AsyncLocalStorage carries the chain of loads a call is nested in (RecursiveLoad detection).
// With `healing: { enabled: true }` a cache heals itself in the background (the core's loop on
// the addon's runtime, which never keeps the process alive).
const Cache = makeCache(native, { asyncLocalStorage: new AsyncLocalStorage(), backgroundHealing: true });
module.exports = { Cache, NOT_FOUND };
