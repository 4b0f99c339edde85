'use strict';
// healcache for Node.js: the shared JS wrapper (js/cache.mjs) over the napi-rs addon
// (bindings-node). Build the addon with `npm run build`.
const { AsyncLocalStorage } = require('node:async_hooks');
const { makeCache, makeClock, NOT_FOUND } = require('../../dist/cache.cjs');

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
// A test clock: `new Cache({ clock: new ManualClock() })`, moved by `clock.advance(ms)`.
const ManualClock = makeClock(native);
module.exports = { Cache, ManualClock, NOT_FOUND };
