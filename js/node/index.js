'use strict';
// healcache for Node.js: the shared JS wrapper (js/cache.mjs, bundled as dist/cache.cjs) over the
// napi-rs addon (bindings-node), or over the WebAssembly build when no native binary fits.
//
// The native binary is looked for, in order (the napi-rs layout):
//   1. dist/healcache.node: built in a checkout (`npm run build`, `make build-node`), or by the
//      `prepare` script of a git or path install;
//   2. @healcache/<platform>: the prebuilt package npm installs from `optionalDependencies`
//      when its `os`, `cpu` and `libc` fit this machine (`make package` builds them).
// A candidate that is there but cannot load here (dlopen fails) counts as absent.
// With none of them, the WebAssembly build serves (the same `Cache`, without a background
// healing thread: call `runHealingInterval()`). HEALCACHE_BACKEND=wasm asks for it directly.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { platformTriple } = require('./platform.js');

const root = join(__dirname, '..', '..');

function notBuilt(what, cause) {
  const e = new Error(
    `healcache: ${what}. From a checkout of the repository: \`npm install\` (or \`npm run build\`) builds ` +
      'it with Rust (rustup, 1.95 or newer) in a few minutes; an install from npm gets a prebuilt binary ' +
      '(@healcache/<platform>) or the WebAssembly build.' +
      (cause ? ` (${cause.message.split('\n')[0]})` : ''),
  );
  e.code = 'HEALCACHE_NOT_BUILT';
  return e;
}

let wrapper;
try {
  wrapper = require('../../dist/cache.cjs');
} catch (e) {
  if (e.code !== 'MODULE_NOT_FOUND') throw e;
  throw notBuilt('the package is not built (dist/cache.cjs is missing)', e);
}

// A binary that is there but does not load (built for another platform, or needing a newer
// glibc than this machine's: npm matches a platform package's `libc` by family only) is passed
// over like a missing one; `tried` says why, for the error when HEALCACHE_BACKEND=native.
const unloadable = (what, e) => `${what}: ${e.message.split('\n')[0]}`;

function loadNative(triple) {
  const tried = [];
  const local = join(root, 'dist', 'healcache.node');
  if (existsSync(local)) {
    try {
      return { addon: require(local), tried };
    } catch (e) {
      if (e.code !== 'ERR_DLOPEN_FAILED') throw e;
      tried.push(unloadable(local, e));
    }
  } else {
    tried.push(local);
  }
  const pkg = `@healcache/${triple}`;
  try {
    return { addon: require(pkg), tried };
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND') tried.push(pkg);
    else if (e.code === 'ERR_DLOPEN_FAILED') tried.push(unloadable(pkg, e));
    else throw e;
    return { addon: undefined, tried };
  }
}

function loadWasm() {
  try {
    return require('../wasm/node.js');
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
    return undefined;
  }
}

const triple = platformTriple();
const forced = process.env.HEALCACHE_BACKEND;
if (forced !== undefined && forced !== 'native' && forced !== 'wasm') {
  throw new Error(`healcache: HEALCACHE_BACKEND must be "native" or "wasm", not ${JSON.stringify(forced)}`);
}
const { addon, tried } = forced === 'wasm' ? { addon: undefined, tried: [] } : loadNative(triple);

let Cache;
let ManualClock;
let WriteBehind;
let backend;
let prometheusJoin;
if (addon !== undefined) {
  const { AsyncLocalStorage } = require('node:async_hooks');
  // AsyncLocalStorage carries the chain of loads a call is nested in (RecursiveLoad detection).
  // With `healing: { enabled: true }` a cache heals itself in the background (the core's loop on
  // the addon's runtime, which never keeps the process alive).
  Cache = wrapper.makeCache(addon, { asyncLocalStorage: new AsyncLocalStorage(), backgroundHealing: true });
  // A test clock: `new Cache({ clock: new ManualClock() })`, moved by `clock.advance(ms)`.
  ManualClock = wrapper.makeClock(addon);
  // A write-behind queue in front of a writer (the core's; its drainer on the addon's runtime).
  WriteBehind = wrapper.makeWriteBehind(addon, Cache);
  // When the event loop runs out of work, the write-behind queues still running send what they
  // hold to their writers (what they could not send in time is reported on stderr, never
  // dropped without a word), then the shared tiers still open send the writes they queued (and
  // the bus messages announcing them) before the process exits, each within the core's exit
  // timeout. Once: the calls' own promises would otherwise bring the event back.
  // `process.exit()` skips it.
  process.once('beforeExit', async () => {
    const report = await addon.closeAllWriteBehind();
    if (report !== undefined) process.stderr.write(report);
    await addon.closeAllShared();
  });
  prometheusJoin = wrapper.makePrometheusJoin(addon);
  backend = 'native';
} else {
  if (forced === 'native') throw notBuilt(`no native binary for ${triple} (looked for ${tried.join(', ')})`);
  const wasm = loadWasm();
  if (wasm === undefined) {
    throw notBuilt(
      `neither a native binary for ${triple} (looked for ${tried.join(', ')}) nor the WebAssembly build ` +
        '(bindings-wasm/pkg-node) is here',
    );
  }
  Cache = wasm.Cache;
  ManualClock = wasm.ManualClock;
  WriteBehind = wasm.WriteBehind;
  prometheusJoin = wasm.prometheusJoin;
  backend = 'wasm';
}

module.exports = { Cache, ManualClock, WriteBehind, prometheusJoin, NOT_FOUND: wrapper.NOT_FOUND, backend };
