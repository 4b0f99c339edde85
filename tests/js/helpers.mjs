// Which build the suite runs against: the napi-rs addon (default) or the WebAssembly build
// (TEST_WASM=1), as lightningcss does. The test files import `Cache` from here only.
export const WASM = Boolean(process.env.TEST_WASM);
const mod = WASM ? await import('healcache/wasm') : await import('healcache');
export const { Cache, NOT_FOUND, WriteBehind, prometheusJoin } = mod;
export const testing = mod.__testing;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `f()` is true, checking every 10 ms; throws after `ms`. */
export async function waitFor(f, ms = 5000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${f}`);
    await sleep(10);
  }
}

/**
 * Waits until `f()` is true, checking every 5 ms, for at most `ms` (generous: CI runs every suite
 * at once on a loaded 2-core machine); returns whether it holds. Throws nothing: the caller's
 * own assertion (and its message) then says what did not happen. For background work (a
 * refresh, a repair, an L2 write) that a fixed sleep cannot be sure to outlast.
 */
export async function eventually(f, ms = 10_000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/** A loader for a read that must be answered from the shared tier: it throws if called. */
export const unloadable = async () => {
  throw new Error('the loader ran: the value should have come from L2');
};

/** The error `f()` throws (the test fails if it throws none). */
export const thrown = (f) => {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
};

/**
 * `loops` concurrent callers per cache fetching, for `ms`, half the time `hot` and half one of 60
 * tail keys (those from 50 up absent: the loader answers NOT_FOUND), a loader taking 10 ms.
 * Checks each answer is its key's; returns how many were answered and each error's count.
 */
export async function hammerFetches(caches, { ms, loops }) {
  let n = 0;
  const errors = new Map();
  const until = Date.now() + ms;
  const caller = async (c) => {
    while (Date.now() < until) {
      const i = Math.floor(Math.random() * 60);
      const key = Math.random() < 0.5 ? 'hot' : `k${i}`;
      const absent = key !== 'hot' && i >= 50;
      try {
        const f = await c.fetch(key, async () => {
          await sleep(10);
          return absent ? NOT_FOUND : `${key}@${Date.now()}`;
        });
        const ok = absent ? f.value === undefined : typeof f.value === 'string' && f.value.startsWith(`${key}@`);
        if (!ok) throw new Error(`${key} answered ${f.value}`);
        n++;
      } catch (e) {
        errors.set(String(e), (errors.get(String(e)) || 0) + 1);
      }
      await sleep(1);
    }
  };
  await Promise.all(caches.flatMap((c) => Array.from({ length: loops }, () => caller(c))));
  return { n, errors: [...errors] };
}
