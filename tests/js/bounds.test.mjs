// The core's bounds seen from JS (byte budget, sub-nanosecond durations, the negative-TTL cap,
// version 0 of an absent key), on both backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, thrown } from './helpers.mjs';


test('the byte budget holds for heavy entries (strings and Buffers)', () => {
  for (const make of [(i) => String(i % 10).repeat(900 * 1024), (i) => Buffer.alloc(900 * 1024, i)]) {
    const c = new Cache({ maxBytes: 1 << 20 });
    for (let i = 0; i < 64; i++) {
      c.set(`k${i}`, make(i));
      const w = c.stats().weight;
      assert.ok(w <= 1 << 20, `after set ${i}: weight ${w}`);
    }
    assert.ok(c.size <= 1);
  }
});

test('core bounds: ttl below a nanosecond and negativeTtl over maxNegativeTtl are InvalidConfig', () => {
  assert.equal(thrown(() => new Cache({ ttl: 1e-9 })).code, 'InvalidConfig');
  assert.equal(thrown(() => new Cache({ negativeTtl: 61000 })).code, 'InvalidConfig');
  assert.ok(new Cache({ negativeTtl: 60000 }));
  const c = new Cache();
  assert.equal(thrown(() => c.set('k', 1, { ttl: 1e-9 })).code, 'InvalidConfig');
  assert.equal(c.has('k'), false);
});

test('delete with ifVersion 0 on a never-written key succeeds, removes nothing and changes nothing', () => {
  const c = new Cache();
  c.set('other', 1);
  assert.equal(c.delete('never', { ifVersion: 0 }), false);
  assert.equal(c.has('never'), false);
  assert.equal(c.get('other'), 1);
  assert.equal(c.size, 1);
});
