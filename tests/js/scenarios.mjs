// The conformance scenarios on Node's test runner: the scenarios of tests/conformance/*.json, one
// test per scenario, and the results file tests/conformance/matrix.py reads
// (target/conformance/<surface>.json). The driver itself is tests/js/driver.mjs.
import { after, test } from 'node:test';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = `${root}tests/conformance/`;
export const SCENARIOS = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .flatMap((f) => JSON.parse(readFileSync(dir + f, 'utf8')).scenarios);

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
