// Writes the shared tier cannot take, from Node: a value whose encoded payload is over
// `maxEntryBytes` is refused by `set` (code ValueTooLarge) before anything changes, though the
// mirror weighs it lighter; and a cache whose Redis never answered is not ready.
//
// Promises checked: bad input gets a clear, typed error and changes nothing; nothing is hidden
// silently (a value L2 refuses is not left in L1 while L2 keeps the one it replaced).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { redisAvailable, redisFor, sleep } from './rediskit.mjs';
import { Cache, WASM, unloadable, waitFor } from './helpers.mjs';

const skip = !redisAvailable() ? 'redis-server is not installed' : WASM ? 'the WebAssembly package has no shared tier' : false;

test('a value L2 would refuse is refused by set and changes nothing', { skip }, async (t) => {
  const redis = await redisFor(t);
  const a = new Cache({ redis: redis.url, ttl: 60_000, maxEntryBytes: 1000 });
  const b = new Cache({ redis: redis.url, ttl: 60_000, maxEntryBytes: 1000 });
  t.after(() => [a.close(), b.close()]);
  const v1 = a.set('k', 'small');
  await waitFor(() => a.stats().l2Writes === 1);
  // the default sizeOf weighs an object at 0 bytes
  assert.throws(() => a.set('k', { a: 'x'.repeat(5000) }), (e) => e.code === 'ValueTooLarge' && /^entry weighs 50\d\d bytes, over the limit of 1000$/.test(e.message));
  assert.equal(a.get('k'), 'small');
  assert.equal(a.version('k'), v1);
  await sleep(200);
  assert.equal(a.stats().l2Writes, 1);
  assert.equal(a.stats().l2CodecErrors, 0);
  assert.equal(await b.getOrLoad('k', unloadable), 'small', 'L2 is as it was');
});

test('a cache whose Redis never answered is not ready', { skip }, async (t) => {
  const redis = await redisFor(t);
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const bad = new Cache({ redis: `redis://127.0.0.1:${port}` });
  const good = new Cache({ redis: redis.url });
  t.after(() => [bad.close(), good.close()]);
  await waitFor(() => good.ready());
  for (let i = 0; i < 20; i++) {
    assert.equal(bad.ready(), false);
    await sleep(50);
  }
});
