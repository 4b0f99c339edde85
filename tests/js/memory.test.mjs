// What V8 hears of a native cache's memory: the addon reports the room a cache made up front
// (`Cache::reserved_bytes`) as external memory while its handle lives, so a process that drops
// caches has them collected in time. Without it V8 saw a few bytes per cache and no reason to
// collect: 10,000 dropped caches of 10,000 entries held 123 MB more RSS than one. Native only:
// the WebAssembly build's memory is the module's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASM } from './helpers.mjs';

const ENTRY = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'js', 'node', 'index.mjs');

test('dropped caches are collected without an explicit gc: V8 hears of their memory', { skip: WASM }, () => {
  // a fresh process, so this file's own garbage decides nothing
  const script = `
import { Cache } from ${JSON.stringify(ENTRY)};
let finalized = 0;
const reg = new FinalizationRegistry(() => finalized++);
for (let i = 0; i < 300; i++) {
  const c = new Cache({ maxEntries: 100000 });
  c.set('k', 1);
  reg.register(c, i);
  if (i % 10 === 9) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify({ finalized }));
`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const { finalized } = JSON.parse(out.trim().split('\n').pop());
  // each cache reports megabytes: V8 collects many times over 300 of them (none were collected
  // when it heard of a few bytes each)
  assert.ok(finalized >= 100, `${finalized} of 300 dropped caches collected`);
});
