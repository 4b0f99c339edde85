// The conformance driver (tests/js/driver.mjs) as an edge worker over the web build: a POST of
// `{ surface, scenarios }` runs each scenario not skipped for `surface`, one after another, and
// answers `{ name: { result, reason } }`; `/__up` answers once the runtime serves.
import { initSync, Cache, ManualClock, NOT_FOUND } from 'healcache/wasm/web';
import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';
import { makeDriver } from 'healcache-tests/driver.mjs';

initSync(wasm);
const { run } = makeDriver({ Cache, ManualClock, NOT_FOUND });

export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/__up') return new Response('up');
    const { surface, scenarios } = await request.json();
    const results = {};
    for (const s of scenarios) {
      const why = s.skip && s.skip[surface];
      if (why) {
        results[s.name] = { feature: s.feature, result: 'skip', reason: why };
        continue;
      }
      try {
        await run(s);
        results[s.name] = { feature: s.feature, result: 'pass', reason: '' };
      } catch (e) {
        results[s.name] = { feature: s.feature, result: 'fail', reason: String((e && e.message) || e) };
      }
    }
    return Response.json(results);
  },
};
