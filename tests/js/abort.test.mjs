// AbortSignal as the platform uses it: an aborted call rejects with `signal.reason` (as fetch()
// does), a signal aborted before the call rejects at once (a mirror hit too), the same on the
// addon and on WebAssembly; the loader gets `{ signal }`, aborted once no caller waits any more
// or the load timed out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache, sleep } from './helpers.mjs';

// Waits until `cond()` holds, up to 5 s (the abort reaches JS through the event loop).
async function until(cond) {
  for (let t = 0; t < 500 && !cond(); t++) await sleep(10);
  return cond();
}

test('an aborted signal rejects at once with its reason, on a hit too', async () => {
  const c = new Cache();
  c.set('k', 'v');
  const ac = new AbortController();
  const why = new Error('the request went away');
  ac.abort(why);
  await assert.rejects(c.getOrLoad('k', () => 'x', { signal: ac.signal }), (e) => e === why);
  await assert.rejects(c.fetch('k', () => 'x', { signal: ac.signal }), (e) => e === why);
  // a default reason is the platform's AbortError
  const plain = new AbortController();
  plain.abort();
  await assert.rejects(c.getOrLoad('k', () => 'x', { signal: plain.signal }), (e) => e.name === 'AbortError');
  // a signal not aborted changes nothing
  assert.equal(await c.getOrLoad('k', () => 'x', { signal: new AbortController().signal }), 'v');
});

test('aborting a wait rejects with the reason, fetch too', async () => {
  const c = new Cache();
  const ac = new AbortController();
  const p = c.fetch('k', () => sleep(50).then(() => 'v'), { signal: ac.signal });
  await sleep(5);
  const why = { custom: true };
  ac.abort(why);
  await assert.rejects(p, (e) => e === why);
});

test('the loader receives { signal }, aborted once every waiter has gone', async () => {
  const c = new Cache();
  let seen;
  let aborted = 0;
  const loader = (key, ctx) => {
    seen = ctx.signal;
    ctx.signal.addEventListener('abort', () => aborted++);
    return sleep(2000).then(() => 'late');
  };
  const a = new AbortController();
  const b = new AbortController();
  const pa = c.getOrLoad('k', loader, { signal: a.signal });
  const pb = c.getOrLoad('k', loader, { signal: b.signal });
  assert.ok(await until(() => seen !== undefined));
  assert.ok(seen instanceof AbortSignal);
  a.abort();
  await assert.rejects(pa);
  await sleep(20);
  assert.equal(seen.aborted, false, 'one waiter is left');
  b.abort();
  await assert.rejects(pb);
  assert.ok(await until(() => seen.aborted));
  assert.equal(aborted, 1);
});

test('the loader signal fires when the load times out, and never after a load that ended', async () => {
  const c = new Cache({ loadTimeout: 30 });
  let slow;
  await assert.rejects(c.getOrLoad('k', (key, { signal }) => {
    slow = signal;
    return sleep(300).then(() => 1);
  }), (e) => e.code === 'LoadTimeout');
  assert.ok(await until(() => slow.aborted));
  let fast;
  assert.equal(await c.getOrLoad('f', (key, { signal }) => {
    fast = signal;
    return 'ok';
  }), 'ok');
  await sleep(20);
  assert.equal(fast.aborted, false);
});

test('one signal shared by many waiting calls adds one listener: no MaxListenersExceededWarning', async () => {
  // a request's signal handed to every load it makes, as with fetch(): Node warns past 10
  // listeners on one signal
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    const c = new Cache();
    const other = new Cache();
    const ctl = new AbortController();
    const loads = [];
    for (let i = 0; i < 30; i++) {
      loads.push(c.getOrLoad(`k${i}`, async () => (await sleep(20), i), { signal: ctl.signal }));
      loads.push(other.fetch(`k${i}`, async () => (await sleep(20), i), { signal: ctl.signal }));
    }
    const got = await Promise.all(loads);
    assert.deepEqual(got.filter((_, j) => j % 2 === 0), [...Array(30).keys()]);
    // still aborts every call waiting on it
    const waits = [];
    for (let i = 0; i < 12; i++) waits.push(c.getOrLoad(`w${i}`, () => new Promise(() => {}), { signal: ctl.signal }));
    const reason = new Error('request gone');
    ctl.abort(reason);
    for (const w of waits) await assert.rejects(w, (e) => e === reason);
    await sleep(10);
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
});
