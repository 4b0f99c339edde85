// P5 (everything is bounded), in the WebAssembly build: the room a cache makes up front for its
// entries (its slot tables; key indexes and the eviction ghost grow with the entries) is at most
// 128 entries there (`RESERVED_ENTRIES` on wasm32, core/src/store.rs), because a module's memory
// is committed as it grows. The native
// value is unit-tested in the core; this runs the real module. It loads the WebAssembly package
// itself, so it runs in the default leg and with TEST_WASM=1 alike, and fails when the package
// is not built (`node js/build.mjs wasm`; `make test-node` builds it first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);
const GLUE = `${root}bindings-wasm/pkg-node/healcache_wasm.js`;

/** The WebAssembly package, or a clear failure when it is not built (never a skip). */
function wasmPackage() {
  const built = ['bindings-wasm/pkg-node/healcache_wasm_bg.wasm', 'bindings-wasm/pkg-node/healcache_wasm.js', 'dist/cache.cjs'];
  for (const f of built) {
    if (!existsSync(`${root}${f}`)) {
      throw new Error(
        `the WebAssembly package is not built (${f} is missing): run \`node js/build.mjs wasm\` (or \`make build-wasm\`)`,
      );
    }
  }
  return require('healcache/wasm');
}

// What room for one entry weighs on wasm32 (core/src/store/shard.rs, core/src/index.rs,
// core/src/eviction.rs): a slot of 56 bytes (the key's CompactString, 12 bytes padded to 16;
// `expires_at` 8; the stamp 8; the value, js-common's `Handle`, 24), an index bucket of 8 bytes
// at 8/5 buckets per entry, an 8-byte queue link, and the ghost's 16-byte bucket per 8 entries:
// about 79 bytes. Room for 128 entries is
// then about 10 KB; room for the native bound, 2,097,152, about 161 MB.
const PER_ENTRY = 56 + (8 * 8) / 5 + 8 + 16 / 8;
// The threshold, 1 MiB, leaves room for what else a shard holds, its lock's stripes, and memory
// growing by whole 64 KiB pages, and is 150 times below room for 2,097,152.
const ROOM_LIMIT = 1 << 20;

test('P5: in WebAssembly, maxEntries 2,000,000 or 100,000,000 makes room for about 128 entries up front; the tables grow past it', () => {
  wasmPackage();
  // A fresh instance, in a child: memory freed earlier in the same instance would hide growth.
  // The glue's `outRow()` is a view of the module's memory, so its buffer is that memory.
  const script = `
    const raw = require(${JSON.stringify(GLUE)});
    const { Cache } = require('healcache/wasm');
    const memory = () => raw.outRow().buffer.byteLength;
    new Cache({ maxEntries: 10 }).get('warm'); // the protocol and settings, read once per module
    const before = memory();
    const c = new Cache({ maxEntries: 2000000 });
    c.get('absent'); // the core is built at its first use (it is seeded then)
    const made = memory();
    // the ghost once took an eighth of a shard's capacity up front: 64 MiB at this size
    const huge = new Cache({ maxEntries: 100000000 });
    huge.get('absent');
    const hugeMade = memory();
    for (let i = 0; i < 5000; i++) c.set('k' + i, i);
    const filled = memory();
    let read = 0;
    for (let i = 0; i < 5000; i++) if (c.get('k' + i) === i) read++;
    console.log(JSON.stringify({ before, made, hugeMade, filled, size: c.size, read, evictions: c.stats().evictions }));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  const grew = m.made - m.before;
  const hugeGrew = m.hugeMade - m.made;
  const room = (n) => Math.round(n * PER_ENTRY);
  const info =
    `memory ${m.before} -> ${m.made} -> ${m.hugeMade} bytes (grew ${grew}, then ${hugeGrew}; ` +
    `room for 128 is about ${room(128)}, for 2,097,152 about ${room(2097152)})`;
  assert.ok(grew <= ROOM_LIMIT, info);
  assert.ok(hugeGrew <= ROOM_LIMIT, info);
  // more than the reserve: the tables grow (in the memory measured above), and every entry reads back
  assert.deepEqual([m.size, m.read, m.evictions], [5000, 5000, 0]);
  assert.ok(m.filled > m.made, `filling 5,000 entries grew memory ${m.made} -> ${m.filled}`);
});

test('P5: in WebAssembly, caches of exactly 128 and 129 entries (and 1,024, 1,025) fill to their bound and evict one past it', () => {
  const { Cache } = wasmPackage();
  // 128 is the whole reserve; 129 is one past it, so its tables grow for the last entry
  for (const bound of [128, 129, 1024, 1025]) {
    const c = new Cache({ maxEntries: bound });
    for (let i = 0; i < bound; i++) c.set(`k${i}`, i);
    assert.equal(c.size, bound);
    let read = 0;
    for (let i = 0; i < bound; i++) if (c.get(`k${i}`) === i) read++;
    assert.equal(read, bound, `${bound}: every entry reads back`);
    assert.equal(c.stats().evictions, 0);
    c.set('one-more', -1);
    assert.equal(c.size, bound, `${bound}: one more keeps the size at the bound`);
    assert.equal(c.stats().evictions, 1);
    assert.equal(c.get('one-more'), -1);
  }
});

test('P5: in WebAssembly, 200 default caches of one entry each take at most 32 KiB of memory apiece', () => {
  wasmPackage();
  // Per-tenant caches in a worker: each used to take about 125 KB at its first use (room for
  // 1,024 entries), so memory grew page by page and creating caches slowed as they added up.
  const script = `
    const raw = require(${JSON.stringify(GLUE)});
    const { Cache } = require('healcache/wasm');
    const memory = () => raw.outRow().buffer.byteLength;
    new Cache({ maxEntries: 10 }).get('warm');
    const before = memory();
    const caches = [];
    for (let i = 0; i < 200; i++) {
      const c = new Cache();
      c.set('a', i);
      caches.push(c);
    }
    console.log(JSON.stringify({ grew: memory() - before, read: caches.filter((c, i) => c.get('a') === i).length }));
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.equal(m.read, 200);
  assert.ok(m.grew <= 200 * 32 * 1024, `200 caches grew memory by ${m.grew} bytes`);
});
