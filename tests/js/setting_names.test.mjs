// Promise: every surface takes the names the others show. The RESP server's CONFIG shows a
// healing setting as `healing.<name>`; JS takes it too (durations in ms, as every JS duration).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cache } from './helpers.mjs';

test('a healing setting is taken under healing. and its name', () => {
  const c = new Cache();
  assert.equal(c.configGet('healing.verify_interval'), c.configGet('verifyInterval'));
  c.configSet('healing.verify_interval', 2500);
  assert.equal(c.healingConfig().verifyIntervalMs, 2500);
  c.configSet('healing.verifyInterval', 1500);
  assert.equal(c.configGet('healing.verify_interval'), '1500');
  c.configSet('healing.autoRepair', 'off');
  assert.equal(c.configGet('healing.autoRepair'), 'false');
  assert.equal(c.configGet('healing.auto_repair'), 'false');
});

test('only healing settings take the prefix', () => {
  const c = new Cache();
  const before = c.healingConfig();
  for (const name of ['healing.loadTimeout', 'healing.healing.sample_rate', 'healing.']) {
    assert.throws(() => c.configSet(name, 1), (e) => e.code === 'InvalidConfig', name);
  }
  assert.deepEqual(c.healingConfig(), before);
});

test('a healing setting given under its name and its former name at once is refused, naming both', () => {
  const c = new Cache();
  const before = c.healingConfig();
  for (const [former, name] of [['verifyIntervalMs', 'verifyInterval'], ['sourceTimeoutMs', 'sourceTimeout']]) {
    for (const settings of [{ [name]: 100, [former]: 200 }, { [former]: 300, [name]: 400 }, { [former]: 300, [name]: 300 }]) {
      const check = (e) =>
        e.code === 'InvalidConfig' && e.field === `healing.${former}` && e.message.includes(`\`healing.${name}\``);
      assert.throws(() => c.setHealing(settings), check, JSON.stringify(settings));
      assert.throws(() => new Cache({ healing: settings }), check, JSON.stringify(settings));
    }
    // one of them undefined: given once
    c.setHealing({ [name]: 1234, [former]: undefined });
    c.setHealing(before);
  }
  c.setHealing({ verifyIntervalMs: before.verifyIntervalMs });
  assert.deepEqual(c.healingConfig(), before);
});
