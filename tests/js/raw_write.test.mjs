// The addon's `setPlain` (the write of every `set` without options) is a raw napi callback, not a
// generated one: its argument conversion is checked here, at the backend, since the wrapper
// always calls it right. A bad argument is a thrown error that changes nothing, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Cache, WASM, thrown } from './helpers.mjs';

const skip = WASM && 'the napi addon only';

test('setPlain converts its arguments as a generated function does', { skip }, () => {
  const B = createRequire(import.meta.url)('../../dist/healcache.node');
  const c = new Cache({ maxKeyLen: 8 });
  const h = c._c;
  const v = B.setPlain(h, 'k', 2, 0, false);
  assert.ok(v > 0);
  assert.equal(B.version(h, 'k'), v);
  // each argument of the wrong type, and too few arguments: an error, nothing written
  const bad = [[{}, 'x', 4, 0, false], [h, 7, 4, 0, false], [h, 'x', '4', 0, false], [h, 'x', 4, null, false], [h, 'x', 4, 0, 1], [h, 'x', 4, 0], []];
  for (const [n, args] of bad.entries()) {
    const e = thrown(() => B.setPlain(...args));
    assert.ok(e instanceof Error, `case ${n}`);
    assert.equal(B.version(h, 'x'), 0);
  }
  // a core error keeps its code
  assert.equal(thrown(() => B.setPlain(h, '123456789', 4, 0, false)).code, 'KeyTooLong');
  assert.equal(B.version(h, 'k'), v);
});
