// A value the cache lets go is released when the call that let it go returns, as Map and
// lru-cache release theirs: nothing in the wrapper keeps it for a later batch. Each case runs in
// a fresh process with `--expose-gc` and counts, with WeakRefs, the values still reachable.
// Runs against the addon and, with TEST_WASM=1, the WebAssembly build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { WASM } from './helpers.mjs';

/** Runs `body` (which fills `refs` with WeakRefs to values it let go) in a fresh process; the count still reachable after collections. */
function reachableAfter(body) {
  const script = `
import { Cache, WriteBehind } from ${JSON.stringify(WASM ? 'healcache/wasm' : 'healcache')};
const refs = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
${body}
for (let i = 0; i < 3; i++) { globalThis.gc(); await sleep(5); }
console.log(JSON.stringify({ reachable: refs.filter((r) => r.deref() !== undefined).length }));
`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(out.trim().split('\n').pop()).reachable;
}

test('delete releases the value it removes', () => {
  const n = reachableAfter(`
const c = new Cache();
(() => { for (let i = 0; i < 200; i++) { const v = new Uint8Array(1 << 16); refs.push(new WeakRef(v)); c.set('k' + i, v); } })();
for (let i = 0; i < 200; i++) c.delete('k' + i);
for (let i = 0; i < 1000; i++) c.get('hot');
`);
  assert.equal(n, 0);
});

test('clear and an overwrite release the values they remove', () => {
  const n = reachableAfter(`
const c = new Cache();
(() => { for (let i = 0; i < 200; i++) { const v = new Uint8Array(1 << 16); refs.push(new WeakRef(v)); c.set('k' + i, v); } })();
(() => { for (let i = 0; i < 100; i++) c.set('k' + i, i); })();
c.clear();
`);
  assert.equal(n, 0);
});

test('the value of a load no caller waits for any more is released once it arrives', () => {
  const n = reachableAfter(`
for (let i = 0; i < 50; i++) {
  const c = new Cache();
  const ctl = new AbortController();
  const p = c.getOrLoad('k' + i, async () => {
    await sleep(15);
    const v = new Uint8Array(1 << 16);
    refs.push(new WeakRef(v));
    return v;
  }, { signal: ctl.signal }).catch(() => {});
  ctl.abort();
  await p;
  globalThis.keep = (globalThis.keep || []).concat([c]);
}
await sleep(50);
`);
  assert.equal(n, 0);
});

test('the value of a load that timed out is released once it arrives', () => {
  const n = reachableAfter(`
const c = new Cache({ loadTimeout: 5 });
for (let i = 0; i < 50; i++) {
  await c.getOrLoad('k' + i, async () => {
    await sleep(15);
    const v = new Uint8Array(1 << 16);
    refs.push(new WeakRef(v));
    return v;
  }).catch(() => {});
}
await sleep(50);
`);
  assert.equal(n, 0);
});

test('a write-behind queue releases the values it has written', { skip: WASM && 'the WebAssembly package has no WriteBehind' }, () => {
  const n = reachableAfter(`
const c = new Cache();
let written = 0;
const wb = new WriteBehind(c, async (batch) => { written += batch.length; }, { flushInterval: 5 });
for (let i = 0; i < 100; i++) {
  await (async () => { const v = new Uint8Array(1 << 16); refs.push(new WeakRef(v)); await wb.set('k' + i, v); })();
}
while (written < 100) await sleep(5);
await sleep(20);
for (let i = 0; i < 100; i++) c.delete('k' + i);
`);
  assert.equal(n, 0);
});
