// What the JS conformance driver shares besides its table of ops: the scenarios of
// tests/conformance/*.json, the one matcher of `expect`, the run of a scenario's steps, the
// names converted between the scenarios' snake_case and JS's camelCase, and the results file that
// tests/conformance/matrix.py reads (target/conformance/<surface>.json).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = `${root}tests/conformance/`;
export const SCENARIOS = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .flatMap((f) => JSON.parse(readFileSync(dir + f, 'utf8')).scenarios);

export const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
export const snake = (s) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** An object's keys in camelCase. */
export const camelKeys = (o) => Object.fromEntries(Object.entries(o || {}).map(([k, v]) => [camel(k), v]));
/** Plain data with JS's camelCase keys under the scenarios' snake_case ones. */
export const snaked = (v) =>
  Array.isArray(v) ? v.map(snaked)
  : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), snaked(x)]))
  : v;
export const nulled = (v) => (v === undefined ? null : v);

/** Objects by the keys expected, lists item by item, numbers within 1e-6. */
export function matches(expect, actual) {
  if (Array.isArray(expect)) return Array.isArray(actual) && expect.length === actual.length && expect.every((e, i) => matches(e, actual[i]));
  if (expect !== null && typeof expect === 'object') {
    return actual !== null && typeof actual === 'object' && Object.entries(expect).every(([k, v]) => matches(v, nulled(actual[k])));
  }
  if (typeof expect === 'number') return typeof actual === 'number' && Math.abs(expect - actual) < 1e-6;
  return expect === actual;
}

/**
 * Builds the scenario's run (or checks its `build_error`), checks each step's `expect` against
 * what `run.step` gives (a throw is its outcome), lets background work finish, closes the cache.
 */
export async function runSteps(s, build, outcome) {
  let r;
  try {
    r = build();
  } catch (e) {
    assert.ok(s.build_error, `build: ${e.stack}`);
    assert.ok(matches(s.build_error, outcome(e)), `expected ${JSON.stringify(s.build_error)}, got ${JSON.stringify(outcome(e))}`);
    return;
  }
  assert.ok(!s.build_error, `built, expected ${JSON.stringify(s.build_error)}`);
  try {
    for (const [i, st] of s.steps.entries()) {
      let got;
      try {
        got = await r.step(st);
      } catch (e) {
        got = outcome(e);
      }
      if ('expect' in st) {
        assert.ok(matches(st.expect, got), `step ${i} (${st.op}): expected ${JSON.stringify(st.expect)}, got ${JSON.stringify(got)}`);
      } else {
        // a step that states nothing must still succeed: an error there would pass unseen
        assert.ok(!(got !== null && typeof got === 'object' && 'error' in got), `step ${i} (${st.op}): no expect, got ${JSON.stringify(got)}`);
      }
    }
    await r.settle();
  } finally {
    r.cache.close();
  }
}

/** One test per scenario on `surface` (skipped with its reason), each result recorded and written. */
export function testScenarios(surface, run) {
  const results = {};
  for (const s of SCENARIOS) {
    const why = s.skip && s.skip[surface];
    test(`${surface}: ${s.name}`, { skip: why || false }, async () => {
      results[s.name] = { feature: s.feature, result: 'fail', reason: 'did not finish' };
      try {
        await run(s);
        results[s.name] = { feature: s.feature, result: 'pass', reason: '' };
      } catch (e) {
        results[s.name].reason = e.message;
        throw e;
      }
    });
    if (why) results[s.name] = { feature: s.feature, result: 'skip', reason: why };
  }
  after(() => {
    mkdirSync(`${root}target/conformance`, { recursive: true });
    writeFileSync(`${root}target/conformance/${surface}.json`, JSON.stringify({ surface, scenarios: results }, null, 2));
  });
}
