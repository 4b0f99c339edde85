// Promise: bad input gets a typed error and changes nothing, the same in every language. A
// `sizeOf` must return a whole number of bytes (Python's weigher must return an int): a fraction,
// a negative, a non-number or a number past 2^53 - 1 (where JS numbers stop being exact) is
// `InvalidConfig` naming `sizeOf`, and nothing is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache } from './helpers.mjs';

test('sizeOf must return a whole number of bytes', () => {
  const c = new Cache({ maxBytes: 1000, sizeOf: (v) => v });
  for (const bad of [1.5, -1, NaN, Infinity, 2 ** 70, '7', null]) {
    assert.throws(() => c.set('w', bad), (e) => e.code === 'InvalidConfig' && e.field === 'sizeOf', String(bad));
    assert.equal(c.has('w'), false, String(bad));
  }
  c.set('w', 7);
  assert.equal(c.get('w'), 7);
  assert.equal(c.stats().weight >= 7, true);
});
