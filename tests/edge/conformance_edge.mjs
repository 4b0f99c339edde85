// The conformance scenarios (tests/conformance/*.json) on the edge runtimes: the driver Node runs
// (tests/js/driver.mjs) as a worker over the web build, under workerd and under Deno, each a
// child process on 127.0.0.1 stopped by its pid. Writes target/conformance/<runtime>.json for
// tests/conformance/matrix.py. Run by `make conformance` (not matched by `node --test tests/edge/`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cannotRun, denoImports, root, startDeno, startWorkerd } from './harness.mjs';

const dir = `${root}tests/conformance/`;
const SCENARIOS = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .flatMap((f) => JSON.parse(readFileSync(dir + f, 'utf8')).scenarios);
const WORKER = readFileSync(new URL('./conformance_worker.mjs', import.meta.url), 'utf8');

const RUNTIMES = [
  // nodejs_als: the AsyncLocalStorage that finds a loader asking for its own key (RecursiveLoad);
  // without it such a load ends by its timeout, as docs/edge.md says
  { name: 'workerd', start: (src) => startWorkerd(src, { flags: ['nodejs_als'] }), source: (s) => s },
  { name: 'deno', start: startDeno, source: denoImports },
];

for (const rt of RUNTIMES) {
  const why = cannotRun(rt.name);
  if (why && process.env.CI) throw new Error(`conformance: ${rt.name} cannot run in CI: ${why}`);
  test(`${rt.name}: every conformance scenario, as on the other surfaces`, { skip: why }, async () => {
    const w = await rt.start(rt.source(WORKER));
    let results;
    try {
      const res = await fetch(w.url, { method: 'POST', body: JSON.stringify({ surface: rt.name, scenarios: SCENARIOS }) });
      assert.equal(res.status, 200, `${rt.name} output:\n${w.output().slice(0, 4000)}`);
      results = await res.json();
    } finally {
      await w.stop();
    }
    mkdirSync(`${root}target/conformance`, { recursive: true });
    writeFileSync(`${root}target/conformance/${rt.name}.json`, JSON.stringify({ surface: rt.name, scenarios: results }, null, 2));
    const failed = Object.entries(results).filter(([, r]) => r.result === 'fail');
    assert.deepEqual(failed.map(([n, r]) => `${n}: ${r.reason}`), [], `${failed.length} scenarios failed on ${rt.name}`);
    assert.equal(Object.keys(results).length, SCENARIOS.length, 'a result for every scenario');
  });
}
