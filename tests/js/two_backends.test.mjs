// The package's native build (`healcache`) and its WebAssembly build (`healcache/wasm`) loaded
// in one process keep their own settings: each names, takes and refuses the settings of its own
// core, whichever of the two was loaded first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

// run in a fresh process per order, as module state is per process
function run(first) {
  const script = `
    const N = await import('healcache');
    const W = await import('healcache/wasm');
    const out = {};
    const make = (M, opts) => { try { return new M.Cache(opts); } catch (e) { return { error: e.code + ': ' + e.message }; } };
    const order = ${JSON.stringify(first)} === 'wasm' ? [['wasm', W], ['node', N]] : [['node', N], ['wasm', W]];
    for (const [name, M] of order) {
      const c = make(M, { maxEntries: 10, healing: { sampleRate: 0.5 } });
      out[name] = c.error ?? Object.keys(c.healingConfig());
    }
    out.wasmFleet = (() => { try { new W.Cache({ healing: { fleetVerify: true } }); return 'taken'; } catch (e) { return e.code + ' ' + e.field; } })();
    out.nodeFleet = (() => { try { new N.Cache({ healing: { fleetVerify: true } }); return 'taken'; } catch (e) { return e.code + ' ' + e.field; } })();
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

for (const first of ['node', 'wasm']) {
  test(`with the ${first} build loaded first, each build keeps its own settings`, () => {
    const out = run(first);
    // the shared tier's fleet verifier is a native setting only
    assert.ok(Array.isArray(out.node), String(out.node));
    assert.ok(out.node.includes('fleetVerify'), JSON.stringify(out.node));
    assert.ok(Array.isArray(out.wasm), String(out.wasm));
    assert.ok(!out.wasm.includes('fleetVerify'), JSON.stringify(out.wasm));
    assert.ok(out.wasm.includes('sampleRate'), JSON.stringify(out.wasm));
    assert.equal(out.nodeFleet, 'taken');
    assert.equal(out.wasmFleet, 'InvalidConfig healing.fleetVerify');
  });
}
