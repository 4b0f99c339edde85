// The worker of tests/edge beside the README's: the cases a request's lifetime decides, each on
// its own cache created at module scope (its seed is drawn inside a request). The origin's URL
// comes in the `origin` query parameter; every answer is JSON.
import { initSync, Cache, NOT_FOUND } from 'healcache/wasm/web';
import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';

initSync(wasm);

const swr = new Cache({ ttl: 300, grace: 60_000, staleWhileRevalidate: true });
const timed = new Cache({ loadTimeout: 300 });
const soft = new Cache({ ttl: 300, grace: 60_000, loadSoftTimeout: 50 });
// a loader that asks for its own key: RecursiveLoad where the host has an async context, else
// the load timeout ends it
const rec = new Cache({ loadTimeout: 1000 });

const load = (origin) => async (key) => {
  const res = await fetch(origin + key);
  if (res.status === 404) return NOT_FOUND;
  return res.json();
};

const json = (v, status = 200) => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const origin = url.searchParams.get('origin');
    const [, kind, ...rest] = url.pathname.split('/');
    const key = '/' + rest.join('/');
    const waitUntil = (p) => ctx.waitUntil(p);
    try {
      if (kind === 'swr') return json(await swr.fetch(key, load(origin), { waitUntil }));
      if (kind === 'timed') return json(await timed.fetch(key, load(origin)));
      // a request that stops waiting on its load by a race, not a signal, and answers
      if (kind === 'timed-race') {
        const gaveUp = new Promise((r) => setTimeout(() => r('gave up'), 50));
        return json(await Promise.race([timed.fetch(key, load(origin)), gaveUp]));
      }
      if (kind === 'soft') return json(await soft.fetch(key, load(origin), { waitUntil }));
      // a soft timeout whose load's tail is handed to no waitUntil
      if (kind === 'soft-unkept') return json(await soft.fetch(key, load(origin)));
      if (kind === 'recursive') return json(await rec.fetch(key, () => rec.getOrLoad(key, async () => 'inner')));
      if (kind === 'rec-plain') return json(await rec.fetch(key, async () => 'plain'));
      if (kind === 'stats') return json({ swr: swr.stats(), timed: timed.stats(), soft: soft.stats(), rec: rec.stats() });
      return json({ error: 'no such route' }, 404);
    } catch (e) {
      return json({ error: String(e && e.message), code: e && e.code }, 500);
    }
  },
};
