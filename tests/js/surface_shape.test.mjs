// The shape of what the Node and WebAssembly packages return is the same: `stats()` has the same
// keys in the same order on both (the shared tier's counters are 0 where there is none), and
// exactly the keys the shipped `CacheStats` declares. Each build runs in a process of its own
// (the two share one JS wrapper); the suite's own backend (TEST_WASM) is checked against the
// typings as well.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cache, WASM } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `stats()` of a fresh cache of the package `pkg` (`healcache` or `healcache/wasm`), in a child process. */
function statsOf(pkg) {
  const src = `import { Cache } from '${pkg}';
const c = new Cache({ ttl: 1000 });
c.set('a', 1);
c.get('a');
c.get('b');
await c.getOrLoad('c', async () => 3);
console.log(JSON.stringify(c.stats()));
process.exit(0);`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', src], { cwd: root, encoding: 'utf8' }));
}

test('stats() has the same keys, in the same order, on Node and WASM', () => {
  const node = statsOf('healcache');
  const wasm = statsOf('healcache/wasm');
  assert.deepEqual(Object.keys(wasm), Object.keys(node));
  // what a cache counts alike on both
  for (const k of ['hits', 'misses', 'inserts', 'loads', 'entries']) assert.equal(wasm[k], node[k], k);
  // no shared tier in either: every L2 counter 0 (WASM has none at all)
  for (const [k, v] of Object.entries(wasm)) {
    if (k.startsWith('l2') && typeof v === 'number') assert.equal(v, 0, k);
  }
});

test('stats() has exactly the keys CacheStats declares, with their types', () => {
  const stats = new Cache().stats();
  const keys = Object.keys(stats);
  const union = keys.map((k) => JSON.stringify(k)).join(' | ');
  const lines = [
    `import type { CacheStats, LatencyHistogram } from '${WASM ? 'healcache/wasm' : 'healcache'}';`,
    'type RequiredKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? never : K }[keyof T];',
    'type None<T, What extends string> = [T] extends [never] ? true : { [K in What]: T };',
    `export const undeclared: None<Exclude<${union}, keyof CacheStats>, 'returnedButNotDeclared'> = true;`,
    `export const missing: None<Exclude<keyof CacheStats, ${union}>, 'declaredButNotReturned'> = true;`,
    `export const optional: None<Exclude<keyof CacheStats, RequiredKeys<CacheStats>>, 'declaredOptional'> = true;`,
  ];
  for (const [k, v] of Object.entries(stats)) {
    const type = typeof v === 'number' ? 'number' : 'LatencyHistogram';
    lines.push(`export const t_${k}: CacheStats[${JSON.stringify(k)}] extends ${type} ? true : false = true;`);
  }
  const dir = join(root, 'tests/js', `.types-stats-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, 'stats.mts'), lines.join('\n') + '\n');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom'], types: [], strict: true, noEmit: true },
        files: ['stats.mts'],
      }),
    );
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: root, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`stats() and CacheStats differ (${WASM ? 'WASM' : 'Node'}):\n${e.stdout}${e.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
