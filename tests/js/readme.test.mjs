// README examples are tests: the Node section's example runs as written (against healcache/wasm
// too under TEST_WASM, by changing the import), the edge-worker example runs as a worker would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WASM } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function jsBlocks(section) {
  const body = readme.split(`<!-- ${section}:begin -->`)[1].split(`<!-- ${section}:end -->`)[0];
  const blocks = [...body.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length > 0, `README has a js example in the ${section} section`);
  return blocks;
}
const jsBlock = (section) => jsBlocks(section)[0];

async function runNodeExample(name, src) {
  if (WASM) src = src.replace("from 'healcache'", "from 'healcache/wasm'");
  return withTempModule(name, src, (path) => spawnSync(process.execPath, [path], { cwd: root, encoding: 'utf8' }));
}

// Written inside the package so `import 'healcache'` resolves to this checkout (self-reference).
async function withTempModule(name, source, fn) {
  const path = fileURLToPath(new URL(`./.readme-${name}-${process.pid}.mjs`, import.meta.url));
  writeFileSync(path, source);
  try {
    return await fn(path);
  } finally {
    rmSync(path, { force: true });
  }
}

test('README Node example runs', async () => {
  const r = await runNodeExample('node', jsBlock('node'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /coalesced/);
});

test('README fetch / stampede example runs', async () => {
  const src = jsBlocks('node').find((b) => b.includes('.fetch('));
  assert.ok(src, 'the Node section has a fetch example');
  const r = await runNodeExample('fetch', src);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^healcache_loader_calls_total\{cache="users"\} 3$/m);
});

test('README edge-worker example runs as a worker', { skip: !WASM && 'TEST_WASM not set' }, async () => {
  const line = "import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';";
  const src = jsBlock('wasm');
  assert.ok(src.includes(line));
  // what a worker bundler's wasm import gives: a compiled WebAssembly.Module
  const wasmPath = fileURLToPath(new URL('../../bindings-wasm/pkg-web/healcache_wasm_bg.wasm', import.meta.url));
  const patched = src.replace(
    /^import wasm from .*$/m,
    `import { readFileSync } from 'node:fs';\nconst wasm = new WebAssembly.Module(readFileSync(${JSON.stringify(wasmPath)}));`,
  );
  await withTempModule('worker', patched, async (path) => {
    const worker = (await import(pathToFileURL(path).href)).default;
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => worker.fetch(new Request('https://example.test/users/42'))),
    );
    const bodies = await Promise.all(responses.map((r) => r.json()));
    assert.ok(bodies.every((b) => b.key === '/users/42' && b.at === bodies[0].at));
    await worker.scheduled();
  });
});

// The self-healing examples (issue 7): the first runs on both backends, the second (a URL
// template, served by node:http) on Node only.
test('README self-healing example runs', async () => {
  const r = await runNodeExample('healing', jsBlocks('js-healing')[0]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /prefix: 'user:'/);
});

test('README URL-template source example runs', { skip: WASM && 'URL-template sources are native only' }, async () => {
  const src = jsBlocks('js-healing').find((b) => b.includes('{key}'));
  assert.ok(src, 'the self-healing section has a URL-template example');
  const r = await runNodeExample('healing-http', src);
  assert.equal(r.status, 0, r.stderr);
});
