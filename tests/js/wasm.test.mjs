// WebAssembly only (TEST_WASM=1): the --target web build loaded as an edge worker does (bytes +
// initSync), a panic inside the module giving a clear, stable error afterwards, and the module
// within its size budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WASM } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('the web build: bytes + initSync, then getOrLoad', { skip: !WASM && 'TEST_WASM not set' }, async () => {
  const { initSync, Cache } = await import('healcache/wasm/web');
  const bytes = readFileSync(new URL('../../bindings-wasm/pkg-web/healcache_wasm_bg.wasm', import.meta.url));
  initSync(bytes); // the raw bytes of the .wasm, as a worker that embeds them would
  const cache = new Cache({ maxEntries: 100, ttl: 1000 });
  let calls = 0;
  const load = async (key) => {
    calls++;
    await new Promise((r) => setTimeout(r, 5));
    return { key };
  };
  const got = await Promise.all(Array.from({ length: 100 }, () => cache.getOrLoad('k', load)));
  assert.equal(calls, 1);
  for (const g of got) assert.equal(g, got[0]);
  assert.equal(cache.get('k'), got[0]);
  assert.equal(cache.stats().coalesced, 99);
});

// wasm-bindgen's own object forms, as docs/edge.md shows for the wire module, work for the cache's
// module too; each in a child process (a module is instantiated once per process)
for (const [form, call] of [
  ['initSync({ module })', 'initSync({ module: bytes })'],
  ['initSync(module)', 'initSync(new WebAssembly.Module(bytes))'],
  ['init({ module_or_path })', 'await init({ module_or_path: bytes })'],
  ['init(bytes)', 'await init(bytes)'],
]) {
  test(`the web build instantiates with ${form}`, { skip: !WASM && 'TEST_WASM not set' }, () => {
    const script = `
      import { initSync, init, Cache } from 'healcache/wasm/web';
      import { readFileSync } from 'node:fs';
      const bytes = readFileSync('bindings-wasm/pkg-web/healcache_wasm_bg.wasm');
      ${call};
      const c = new Cache();
      c.set('a', 1);
      console.log('ready', c.get('a'));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ready 1/);
  });
}

test('a panic poisons the instance: later calls throw code Poisoned', { skip: !WASM && 'TEST_WASM not set' }, () => {
  // in a child process: the instance stays poisoned for the rest of its life
  const script = `
    const assert = require('node:assert/strict');
    const { Cache, __testing } = require('healcache/wasm');
    const c = new Cache();
    const obj = {};
    c.set('a', obj);
    assert.throws(() => __testing.panic(), (e) => e.code === 'Poisoned');
    assert.equal(__testing.isPoisoned(), true);
    assert.throws(() => c.set('b', 1), (e) => e.code === 'Poisoned' && /trapped/.test(e.message));
    assert.throws(() => new Cache(), (e) => e.code === 'Poisoned');
    c.getOrLoad('z', () => 1).then(() => process.exit(2), (e) => {
      assert.equal(e.code, 'Poisoned');
      assert.equal(c.get('a'), obj);
      console.log('poisoned-ok');
    });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /poisoned-ok/);
});

test('a stack overflow through a call either leaves the cache working or poisons it, saying so', { skip: !WASM && 'TEST_WASM not set' }, () => {
  // an overflow that unwinds through the module may leave its state half-changed; the next
  // call's trap then names that cause as well as a panic
  const script = `
    const assert = require('node:assert/strict');
    const { Cache, __testing } = require('healcache/wasm');
    const c = new Cache();
    c.set('x', 1);
    let i = 0;
    function walk() { i++; c.set('k', i); walk(); }
    assert.throws(walk, (e) => e instanceof RangeError);
    // where the overflow lands varies: outside the module the cache goes on; inside it the
    // instance is poisoned, and the error says what does that
    let after;
    try {
      c.set('y', 1);
      after = 'works';
    } catch (e) {
      assert.equal(e.code, 'Poisoned');
      assert.match(e.message, /stack overflow|call stack/);
      after = 'poisoned';
    }
    assert.equal(c.get('x'), 1);
    console.log('overflow-ok', after);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /overflow-ok/);
});

test('no timer or thread inside the module: an idle cache lets the process exit', { skip: !WASM && 'TEST_WASM not set' }, () => {
  const script = `
    const { Cache } = require('healcache/wasm');
    const c = new Cache({ ttl: 60000 });
    c.set('a', 1);
    c.getOrLoad('b', () => 2).then((v) => console.log('loaded', v));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /loaded 2/);
});

// The budget of the optimised module (`node js/build.mjs wasm`), as README.md and docs/edge.md
// state it: 256,000 bytes raw and 100 KiB gzipped (gzip level 9), in bytes.
const MAX_RAW = 256_000;
const MAX_GZIPPED = 102_400;

test('the module is within its size budget, raw and gzipped, as the docs state it', { skip: !WASM && 'TEST_WASM not set' }, () => {
  for (const pkg of ['pkg-web', 'pkg-node']) {
    const bytes = readFileSync(new URL(`../../bindings-wasm/${pkg}/healcache_wasm_bg.wasm`, import.meta.url));
    // the file as shipped: optimised and stripped by the build (no name section left to count)
    assert.deepEqual(WebAssembly.Module.customSections(new WebAssembly.Module(bytes), 'name'), [], pkg);
    const gzipped = gzipSync(bytes, { level: 9 }).length;
    assert.ok(bytes.length <= MAX_RAW, `${pkg}: ${bytes.length} bytes, over the budget of ${MAX_RAW}`);
    assert.ok(gzipped <= MAX_GZIPPED, `${pkg}: ${gzipped} bytes gzipped, over the budget of ${MAX_GZIPPED}`);
  }
  // the bound the docs state is the one checked here
  const stated = (n) => n.toLocaleString('en-US');
  for (const doc of ['README.md', 'docs/edge.md']) {
    const text = readFileSync(new URL(`../../${doc}`, import.meta.url), 'utf8');
    assert.ok(text.includes(`${stated(MAX_RAW)} bytes raw`) && text.includes(`${stated(MAX_GZIPPED)} bytes gzipped`), doc);
  }
});
