// Per-call options: every method that takes an options object refuses a name it does not take,
// and options that are not an object, with code InvalidConfig and `field` naming the option,
// before it changes anything; `null` is no options, as for `fetch`. A `signal` that is not an
// AbortSignal is refused the same way before a load starts. `getOrLoad` takes `fetch`'s per-call
// options. Runs against the addon and, with TEST_WASM=1, the WebAssembly build.
//
// Promises checked: bad input gets a clear, typed error and changes nothing; nothing is lost or
// hidden silently (an option that would be dropped is refused instead).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, NOT_FOUND, WriteBehind, WASM, sleep, thrown } from './helpers.mjs';

const nodeOnly = WASM ? 'the WebAssembly package refuses this method' : false;

/** A check for `assert.throws` / `rejects`: InvalidConfig naming `field`. */
const refused = (field) => (e) => {
  assert.equal(e.code, 'InvalidConfig', String(e && e.stack));
  assert.equal(e.field, field, String(e && e.message));
  assert.ok(e instanceof Error);
  assert.ok(e.message.includes(field), e.message);
  return true;
};

/** What a refused call must leave as it was: every counter, the size, and the keys given. */
function snapshot(c, keys) {
  const s = c.stats();
  const counters = Object.fromEntries(Object.entries(s).filter(([, v]) => typeof v === 'number'));
  return { counters, size: c.size, entries: keys.map((k) => [k, c.peek(k), c.version(k)]) };
}


/** A loader answering `value` that counts its calls in `loader.calls`. */
function counting(value) {
  const loader = async () => {
    loader.calls += 1;
    return value;
  };
  loader.calls = 0;
  return loader;
}

test('set refuses an unknown or misspelled option and changes nothing', () => {
  const c = new Cache();
  const v1 = c.set('old', 'a');
  const before = snapshot(c, ['old', 'new']);
  for (const [key, options, field] of [
    ['new', { tttl: 50 }, 'tttl'],
    ['new', { bogus: 1 }, 'bogus'],
    ['new', { ttl: 50, TTL: 50 }, 'TTL'],
    ['old', { ifversion: v1 }, 'ifversion'],
    ['old', { ttl: 50, tag: ['t'] }, 'tag'],
  ]) {
    assert.throws(() => c.set(key, 'b', options), refused(field), JSON.stringify(options));
  }
  assert.deepEqual(snapshot(c, ['old', 'new']), before);
  assert.equal(c.getRemainingTTL('old'), Infinity);
});

test('options that are not an object are refused (field "options"); null is no options', () => {
  const c = new Cache();
  for (const bad of [50, 'ttl', true, () => {}, 1n, Symbol('o')]) {
    assert.throws(() => c.set('k', 1, bad), refused('options'), String(typeof bad));
    assert.throws(() => c.delete('k', bad), refused('options'), String(typeof bad));
  }
  assert.equal(c.size, 0);
  const v = c.set('k', 1, null);
  assert.ok(v > 0);
  assert.equal(c.get('k'), 1);
  assert.equal(c.getRemainingTTL('k'), Infinity);
  assert.equal(c.setIfVersion('k', 2, v, null) > v, true);
  assert.equal(c.delete('k', null), true);
  assert.equal(c.has('k'), false);
  assert.equal(c.delete('k', null), false);
});

test('setIfVersion takes set\'s options but not ifVersion (the expected version is its argument)', () => {
  const c = new Cache();
  const v1 = c.set('k', 'a');
  assert.throws(() => c.setIfVersion('k', 'b', v1, { ifVersion: 0 }), refused('ifVersion'));
  assert.throws(() => c.setIfVersion('k', 'b', v1, { tttl: 5 }), refused('tttl'));
  assert.throws(() => c.setIfVersion('k', 'b', v1, 5), refused('options'));
  assert.equal(c.get('k'), 'a');
  assert.equal(c.version('k'), v1);
  const v2 = c.setIfVersion('k', 'b', v1, { ttl: 10_000 });
  assert.ok(v2 > v1);
  assert.ok(c.getRemainingTTL('k') <= 10_000);
});

test('delete refuses an unknown option and removes nothing', () => {
  const c = new Cache();
  const v = c.set('k', 'a');
  assert.throws(() => c.delete('k', { ifversion: v }), refused('ifversion'));
  assert.throws(() => c.delete('k', { ifVersion: v, force: true }), refused('force'));
  assert.equal(c.get('k'), 'a');
  assert.equal(c.version('k'), v);
  c.delete('k', { ifVersion: v });
  assert.equal(c.has('k'), false);
});

test('getOrLoad refuses an unknown option before a load or a hit, and changes nothing', async () => {
  const c = new Cache();
  c.set('hit', 'h');
  const loader = counting('v');
  const before = snapshot(c, ['hit', 'k']);
  await assert.rejects(c.getOrLoad('k', loader, { bogus: 1 }), refused('bogus'));
  await assert.rejects(c.getOrLoad('k', loader, { tttl: 50 }), refused('tttl'));
  await assert.rejects(c.getOrLoad('hit', loader, { signl: new AbortController().signal }), refused('signl'));
  await assert.rejects(c.getOrLoad('k', loader, 50), refused('options'));
  assert.equal(loader.calls, 0);
  assert.deepEqual(snapshot(c, ['hit', 'k']), before);
  assert.equal(await c.getOrLoad('k', loader, null), 'v');
  assert.equal(loader.calls, 1);
});

test('getOrLoad takes fetch\'s per-call options: a ttl of its own', async () => {
  const c = new Cache();
  assert.equal(await c.getOrLoad('k', async () => 'v', { ttl: 50 }), 'v');
  const left = c.getRemainingTTL('k');
  assert.ok(left > 0 && left <= 50, String(left));
  assert.equal(await c.getOrLoad('forever', async () => 'f', { ttl: Infinity }), 'f');
  assert.equal(c.getRemainingTTL('forever'), Infinity);
  await sleep(80);
  assert.equal(c.get('k'), undefined, 'the entry expired');
  assert.equal(c.get('forever'), 'f');
  // a bad value is the core's refusal, naming the option, before the loader runs
  let calls = 0;
  await assert.rejects(c.getOrLoad('z', () => ++calls, { ttl: 0 }), refused('ttl'));
  await assert.rejects(c.getOrLoad('z', () => ++calls, { ttl: '50' }), refused('ttl'));
  await assert.rejects(c.getOrLoad('z', () => ++calls, { xfetch: 1 }), refused('xfetch'));
  assert.equal(calls, 0);
  assert.equal(c.has('z'), false);
  assert.equal(c.stats().loads, 2);
});

test('getOrLoad with per-call options still rejects "not found" with NotFound, cached for its negativeTtl', async () => {
  const c = new Cache();
  let calls = 0;
  const absent = async () => {
    calls++;
    return NOT_FOUND;
  };
  const notFound = (e) => e instanceof Error && e.code === 'NotFound' && e.message === 'not found';
  await assert.rejects(c.getOrLoad('gone', absent, { negativeTtl: 10_000 }), notFound);
  await assert.rejects(c.getOrLoad('gone', absent, { negativeTtl: 10_000 }), notFound);
  assert.equal(calls, 1, 'the second call was answered by the cached "not found"');
  await assert.rejects(c.getOrLoad('gone2', absent, { ttl: 1_000 }), notFound);
  assert.equal(calls, 2);
  // and the same as the plain call's
  await assert.rejects(c.getOrLoad('gone3', absent), notFound);
});

test('getOrLoad with tags rejects "not found" with NotFound; fetch with the same tags answers a status', { skip: nodeOnly }, async () => {
  const c = new Cache();
  const absent = async () => NOT_FOUND;
  await assert.rejects(c.getOrLoad('t', absent, { tags: ['a'], negativeTtl: 10_000 }), (e) => e.code === 'NotFound' && e.message === 'not found');
  assert.deepEqual(await c.fetch('t', absent, { tags: ['a'] }), { value: undefined, status: 'negative-hit' });
  assert.equal(await c.getOrLoad('u', async () => 7, { tags: ['a'] }), 7);
  assert.equal(c.get('u'), 7);
});

test('getOrLoad with options coalesces with plain callers of the key (one flight)', async () => {
  const c = new Cache();
  let calls = 0;
  const slow = async () => {
    calls++;
    await sleep(20);
    return { v: 1 };
  };
  const got = await Promise.all([
    c.getOrLoad('k', slow),
    c.getOrLoad('k', slow, { ttl: 10_000 }),
    c.fetch('k', slow).then((f) => f.value),
  ]);
  assert.equal(calls, 1);
  assert.ok(got.every((v) => v === got[0]));
});

test('a signal that is not an AbortSignal is refused before a load starts (getOrLoad, fetch)', async () => {
  const c = new Cache();
  c.set('hit', 'h');
  const loader = counting('v');
  for (const signal of [{}, { aborted: false }, { addEventListener() {} }, 5, 'abort', true, () => {}]) {
    await assert.rejects(c.getOrLoad('k', loader, { signal }), refused('signal'));
    await assert.rejects(c.fetch('k', loader, { signal }), refused('signal'));
    await assert.rejects(c.getOrLoad('hit', loader, { signal }), refused('signal'));
  }
  assert.equal(loader.calls, 0);
  assert.equal(c.get('k'), undefined);
  assert.equal(c.stats().loads, 0);
  assert.equal(c.stats().inFlight, 0);
  // null or undefined: no signal
  assert.equal(await c.getOrLoad('k', loader, { signal: null }), 'v');
  assert.equal((await c.fetch('k2', loader, { signal: undefined })).value, 'v');
});

test('a signal of another implementation (AbortSignalLike) is used, not refused', async () => {
  const c = new Cache();
  const listeners = new Set();
  const signal = {
    aborted: false,
    reason: undefined,
    addEventListener: (type, f) => listeners.add(f),
    removeEventListener: (type, f) => listeners.delete(f),
  };
  let release;
  const p = c.getOrLoad('k', () => new Promise((r) => (release = r)), { signal });
  const other = c.getOrLoad('k', async () => 'unused');
  while (release === undefined) await sleep(2);
  assert.equal(listeners.size, 1);
  signal.aborted = true;
  signal.reason = new Error('gone');
  for (const f of listeners) f();
  await assert.rejects(p, (e) => e === signal.reason);
  release('v');
  assert.equal(await other, 'v');
  assert.equal(listeners.size, 0, 'the listener was removed');
});

test('fetch refuses unknown names and a non-object, and still takes its own', async () => {
  const c = new Cache();
  const loader = counting('v');
  await assert.rejects(c.fetch('k', loader, { tttl: 5 }), refused('tttl'));
  await assert.rejects(c.fetch('k', loader, { ifVersion: 0 }), refused('ifVersion'));
  await assert.rejects(c.fetch('k', loader, 'ttl'), refused('options'));
  assert.equal(loader.calls, 0);
  assert.equal(c.stats().loads, 0);
  const f = await c.fetch('k', loader, { ttl: 50, negativeTtl: 10, staleWhileRevalidate: false, xfetch: false, softTimeout: 100, signal: new AbortController().signal, waitUntil: () => {} });
  assert.deepEqual(f, { value: 'v', status: 'loaded' });
  assert.ok(c.getRemainingTTL('k') <= 50);
});

test('writeThrough, getMany and warm refuse unknown names before calling the writer or loader', { skip: nodeOnly }, async () => {
  const c = new Cache();
  c.set('k', 'a');
  let ran = 0;
  const writer = async () => {
    ran++;
  };
  const batch = async (keys) => {
    ran++;
    return new Map(keys.map((k) => [k, k]));
  };
  const before = snapshot(c, ['k', 'x']);
  await assert.rejects(c.writeThrough('k', 'b', writer, { ifVersion: 1 }), refused('ifVersion'));
  await assert.rejects(c.writeThrough('k', 'b', writer, { tttl: 5 }), refused('tttl'));
  await assert.rejects(c.writeThrough('k', 'b', writer, 5), refused('options'));
  await assert.rejects(c.getMany(['x'], batch, { tags: ['t'] }), refused('tags'));
  await assert.rejects(c.getMany(['x'], batch, { tttl: 5 }), refused('tttl'));
  await assert.rejects(c.warm(['x'], batch, { batchSize: 5 }), refused('batchSize'));
  await assert.rejects(c.invalidateTag('t', { hrd: true }), refused('hrd'));
  await assert.rejects(c.invalidateTag('t', { hard: 'yes' }), refused('hard'));
  assert.equal(ran, 0);
  assert.deepEqual(snapshot(c, ['k', 'x']), before);
  // the names they take still work
  assert.ok((await c.writeThrough('k', 'b', writer, { ttl: 10_000 })) > 0);
  assert.equal(c.get('k'), 'b');
  assert.equal(await c.writeThrough('k', 'c', writer, { invalidate: true }), 0);
  assert.deepEqual([...(await c.getMany(['x'], batch, { ttl: 10_000 }))], [['x', 'x']]);
  assert.equal((await c.warm(['y'], batch, { batch: 1, concurrency: 1, minShare: 1 })).found, 1);
  assert.equal(await c.invalidateTag('t', null), 0);
});

test('WriteBehind refuses unknown settings and per-call options, changing nothing', { skip: nodeOnly }, async () => {
  const c = new Cache();
  const batches = [];
  const writer = async (b) => {
    batches.push(b);
  };
  assert.throws(() => new WriteBehind(c, writer, { maxQeue: 5 }), refused('maxQeue'));
  assert.throws(() => new WriteBehind(c, writer, { onFull: { block: 5, bogus: 1 } }), refused('onFull.bogus'));
  assert.throws(() => new WriteBehind(c, writer, 5), refused('options'));
  const wb = new WriteBehind(c, writer, { flushInterval: 1 });
  const before = snapshot(c, ['k']);
  await assert.rejects(wb.set('k', 1, { ifVersion: 0 }), refused('ifVersion'));
  await assert.rejects(wb.set('k', 1, { tags: ['t'] }), refused('tags'));
  await assert.rejects(wb.set('k', 1, { tttl: 5 }), refused('tttl'));
  await assert.rejects(wb.set('k', 1, 5), refused('options'));
  assert.throws(() => wb.failed({ tak: true }), refused('tak'));
  assert.deepEqual(snapshot(c, ['k']), before);
  assert.equal(wb.stats().queueDepth, 0);
  assert.ok((await wb.set('k', 1, null)) > 0);
  assert.ok((await wb.set('k2', 2, { ttl: 10_000 })) > 0);
  assert.deepEqual(wb.failed(null), []);
  assert.equal(await wb.close(5000), 0);
  assert.deepEqual(batches.flat().map((o) => o.key).sort(), ['k', 'k2']);
});

test('every method that takes options refuses a name it does not take', { skip: nodeOnly }, async () => {
  const c = new Cache();
  const wb = new WriteBehind(c, async () => {});
  const noop = async () => new Map();
  const calls = {
    'new Cache': () => new Cache({ bogus: 1 }),
    set: () => c.set('k', 1, { bogus: 1 }),
    setIfVersion: () => c.setIfVersion('k', 1, 0, { bogus: 1 }),
    delete: () => c.delete('k', { bogus: 1 }),
    getOrLoad: () => c.getOrLoad('k', noop, { bogus: 1 }),
    fetch: () => c.fetch('k', noop, { bogus: 1 }),
    invalidateTag: () => c.invalidateTag('t', { bogus: 1 }),
    writeThrough: () => c.writeThrough('k', 1, noop, { bogus: 1 }),
    getMany: () => c.getMany(['k'], noop, { bogus: 1 }),
    warm: () => c.warm(['k'], noop, { bogus: 1 }),
    registerSource: () => c.registerSource('p', () => 1, { bogus: 1 }),
    setHealing: () => c.setHealing({ bogus: 1 }),
    'new WriteBehind': () => new WriteBehind(c, async () => {}, { bogus: 1 }),
    'WriteBehind.set': () => wb.set('k', 1, { bogus: 1 }),
    'WriteBehind.failed': () => wb.failed({ bogus: 1 }),
  };
  for (const [name, f] of Object.entries(calls)) {
    let e;
    try {
      await f();
    } catch (err) {
      e = err;
    }
    assert.ok(e, `${name} accepted an unknown option`);
    assert.equal(e.code, 'InvalidConfig', `${name}: ${e}`);
    assert.ok(e.field === 'bogus' || e.field === 'healing.bogus', `${name}: ${e.field}`);
  }
  assert.equal(c.size, 0);
  await wb.close(1000);
});

test('the WebAssembly package refuses unknown names the same way', { skip: !WASM }, async () => {
  const c = new Cache();
  assert.equal(thrown(() => c.set('k', 1, { tttl: 5 })).field, 'tttl');
  assert.equal(thrown(() => c.delete('k', { force: true })).field, 'force');
  await assert.rejects(c.getOrLoad('k', async () => 1, { bogus: 1 }), refused('bogus'));
  await assert.rejects(c.getOrLoad('k', async () => 1, { signal: {} }), refused('signal'));
  assert.equal(c.size, 0);
  assert.equal(c.stats().loads, 0);
});

test('a per-call softTimeout at or past loadTimeout is refused before any load, as the setting is', async () => {
  const c = new Cache({ loadTimeout: 1000 });
  let loads = 0;
  const load = async () => {
    loads += 1;
    return 1;
  };
  for (const softTimeout of [1000, 5000]) {
    await assert.rejects(c.fetch('k', load, { softTimeout }), (e) => e.code === 'InvalidConfig' && e.field === 'softTimeout');
  }
  assert.equal(loads, 0);
  assert.equal((await c.fetch('k', load, { softTimeout: 999 })).value, 1);
});

test('a per-call value the core refuses is refused on a hit too (the mirror answers hits)', async () => {
  const c = new Cache({ maxEntries: 100, negativeTtl: 1000 });
  await c.getOrLoad('k', async () => 1);
  assert.equal(c.get('k'), 1);
  const load = async () => assert.fail('a hit does not load');
  for (const [options, field] of [
    [{ ttl: -1 }, 'ttl'],
    [{ negativeTtl: -5 }, 'negativeTtl'],
    [{ softTimeout: -1 }, 'softTimeout'],
    [{ ttl: Number.NaN }, 'ttl'],
  ]) {
    const before = snapshot(c, ['k']);
    await assert.rejects(c.fetch('k', load, options), refused(field));
    await assert.rejects(c.getOrLoad('k', load, options), refused(field));
    assert.deepEqual(snapshot(c, ['k']), before);
  }
  // values the core took once answer later hits from the mirror, and a changed one is checked again
  assert.deepEqual(await c.fetch('k', load, { ttl: 5000 }), { value: 1, status: 'hit' });
  assert.deepEqual(await c.fetch('k', load, { ttl: 5000 }), { value: 1, status: 'hit' });
  assert.equal(await c.getOrLoad('k', load, { ttl: 5000 }), 1);
  await assert.rejects(c.fetch('k', load, { ttl: -5000 }), refused('ttl'));
});

test('a fetch with no options between two with the same options keeps the mirror answering their hits', async () => {
  const c = new Cache({ maxEntries: 100 });
  await c.fetch('k', async () => 1, { ttl: 5000 });
  const load = async () => assert.fail('a hit does not load');
  // a plain miss: the core answers it, and no options were given
  assert.deepEqual(await c.fetch('other', async () => 2), { value: 2, status: 'loaded' });
  // the mirror's unreported hits count what it answered without the core
  const hits = c._hits;
  assert.deepEqual(await c.fetch('k', load, { ttl: 5000 }), { value: 1, status: 'hit' });
  assert.equal(c._hits, hits + 1, 'answered by the mirror');
});

test('tags the core refuses are refused on a hit too', { skip: nodeOnly }, async () => {
  const c = new Cache({ maxEntries: 100 });
  await c.getOrLoad('k', async () => 1);
  const load = async () => assert.fail('a hit does not load');
  await assert.rejects(c.fetch('k', load, { tags: [1] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  await assert.rejects(c.fetch('k', load, { tags: [''] }), (e) => e.code === 'InvalidConfig' && e.field === 'tags');
  assert.deepEqual(await c.fetch('k', load, { tags: ['t'] }), { value: 1, status: 'hit' });
});
