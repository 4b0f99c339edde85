// Documentation examples are tests: every ```js block of README.md and docs/*.md runs here, as
// written. A module block runs in its own Node process (against healcache/wasm under TEST_WASM, by
// changing the import); the edge-worker block runs as a worker would, against a real origin on
// 127.0.0.1. A block this file cannot run (a ts block, say) fails the suite instead of being skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WASM } from './helpers.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DOCS = ['README.md', ...readdirSync(`${root}docs`).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const JS_TAGS = new Set(['js', 'javascript', 'mjs']);
const TS_TAGS = new Set(['ts', 'typescript', 'mts']);

/** Every fenced block of the documents: { doc, line, tag, src }. */
function fencedBlocks() {
  const blocks = [];
  for (const doc of DOCS) {
    const text = readFileSync(`${root}${doc}`, 'utf8');
    for (const m of text.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)) {
      const line = text.slice(0, m.index).split('\n').length;
      blocks.push({ doc, line, tag: m[1], src: m[2] });
    }
  }
  return blocks;
}
const blocks = fencedBlocks();
const jsBlocks = blocks.filter((b) => JS_TAGS.has(b.tag));

// What a block prints, where its output is the point: each entry must match exactly one block.
const EXPECTED_STDOUT = [
  { doc: 'README.md', contains: "cache.score('user:')", stdout: /^1 \{ prefix: 'user:', score: 0.5, sampled: 2, repaired: 1 \}$/m },
  { doc: 'docs/node.md', contains: 'setIfVersion', stdout: /coalesced/ },
  { doc: 'docs/node.md', contains: '.fetch(', stdout: /^healcache_loader_calls_total\{cache="users"\} 3$/m },
  { doc: 'docs/node.md', contains: 'renamed', stdout: /prefix: 'user:'/ },
];

const WORKER_WASM_IMPORT = "import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';";
const WORKER_ORIGIN = "const ORIGIN = 'https://api.internal';";
const isWorker = (b) => b.src.includes(WORKER_WASM_IMPORT);
// URL-template sources need the native HTTP client, the shared tier a TCP connection: such
// blocks run against the Node addon only.
// URL-template sources, the shared tier and the patterns built on it are in the Node package only
const isNativeOnly = (b) => ['{key}', 'redis:', 'new WriteBehind(', 'writeThrough(', 'getMany(', '.warm('].some((s) => b.src.includes(s));

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

function runModule(block, name) {
  let src = block.src;
  if (WASM) src = src.replaceAll("from 'healcache'", "from 'healcache/wasm'");
  return withTempModule(name, src, (path) => spawnSync(process.execPath, [path], { cwd: root, encoding: 'utf8' }));
}

test('the documents have the examples this file runs', () => {
  assert.ok(jsBlocks.some((b) => b.doc === 'README.md' && !isWorker(b)), 'README has a Node example');
  assert.ok(jsBlocks.some((b) => b.doc === 'README.md' && isWorker(b)), 'README has an edge-worker example');
  for (const e of EXPECTED_STDOUT) {
    const n = jsBlocks.filter((b) => b.doc === e.doc && b.src.includes(e.contains)).length;
    assert.equal(n, 1, `${e.doc}: exactly one js block contains ${JSON.stringify(e.contains)}`);
  }
});

// (tests/python/test_readme.py checks that every block of every document has a tag some suite runs)
test('no ts blocks: this file would neither run nor type-check them', () => {
  const ts = blocks.filter((b) => TS_TAGS.has(b.tag)).map((b) => `${b.doc}:${b.line}`);
  assert.deepEqual(ts, [], 'write the example as js');
});

for (const [i, block] of jsBlocks.entries()) {
  const where = `${block.doc}:${block.line}`;
  if (isWorker(block)) {
    test(`${where} runs as an edge worker`, { skip: !WASM && 'the worker needs the WASM build (TEST_WASM=1)' }, () =>
      runWorker(block, i),
    );
    continue;
  }
  const skip = WASM && isNativeOnly(block) && 'Node package only';
  test(`${where} runs`, { skip }, async () => {
    const r = await runModule(block, `block${i}`);
    assert.equal(r.status, 0, `${where}\n${r.stderr}`);
    for (const e of EXPECTED_STDOUT) {
      if (e.doc === block.doc && block.src.includes(e.contains)) assert.match(r.stdout, e.stdout, where);
    }
  });
}

// The worker example against a real origin: concurrent requests share one origin call, a key the
// origin does not have is a 404, and the scheduled handler's healing interval repairs drift.
async function runWorker(block, i) {
  assert.ok(block.src.includes(WORKER_ORIGIN), `the worker example declares ${WORKER_ORIGIN}`);
  const users = new Map([['/users/42', { name: 'Ada' }]]);
  let originCalls = 0;
  const origin = createServer((req, res) => {
    originCalls++;
    const user = users.get(req.url);
    if (user) res.end(JSON.stringify({ key: req.url, ...user }));
    else res.writeHead(404).end();
  });
  await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve));
  try {
    // what a worker bundler's wasm import gives: a compiled WebAssembly.Module
    const wasmPath = `${root}bindings-wasm/pkg-web/healcache_wasm_bg.wasm`;
    const src = block.src
      .replace(
        WORKER_WASM_IMPORT,
        `import { readFileSync } from 'node:fs';\nconst wasm = new WebAssembly.Module(readFileSync(${JSON.stringify(wasmPath)}));`,
      )
      .replace(WORKER_ORIGIN, `const ORIGIN = 'http://127.0.0.1:${origin.address().port}';`);
    await withTempModule(`worker${i}`, src, async (path) => {
      const worker = (await import(pathToFileURL(path).href)).default;
      const get = (p) => worker.fetch(new Request(`https://example.test${p}`));

      const responses = await Promise.all(Array.from({ length: 20 }, () => get('/users/42')));
      assert.ok(responses.every((r) => r.status === 200));
      const bodies = await Promise.all(responses.map((r) => r.json()));
      assert.ok(bodies.every((b) => b.key === '/users/42' && b.name === 'Ada'));
      assert.equal(originCalls, 1, 'concurrent requests for a cold key share one origin call');
      assert.equal((await get('/nope')).status, 404);

      users.set('/users/42', { name: 'Ada L.' }); // drift behind the cache's back
      const waits = [];
      await worker.scheduled({}, {}, { waitUntil: (p) => waits.push(p) });
      const [report] = await Promise.all(waits);
      assert.deepEqual([report.drift, report.repaired], [1, 1]);
      assert.equal((await (await get('/users/42')).json()).name, 'Ada L.');
    });
  } finally {
    origin.close();
  }
}
