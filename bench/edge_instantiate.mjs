// The WASM module's instantiate time inside workerd. workerd advances a worker's clocks only at
// I/O, so the time is taken from outside: a request that instantiates the (already compiled)
// module n times against one that instantiates it 0 times, the median difference over rounds,
// divided by n. The imports are stand-ins: instantiating calls none of them (wasm-bindgen's start
// runs from the glue afterwards), so this is the engine's own work per instance.
//   node bench/edge_instantiate.mjs [rounds]
import { cannotRun, startWorkerd } from '../tests/edge/harness.mjs';

const why = cannotRun('workerd');
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}
const rounds = Number(process.argv[2] || 15);
const N = 50;
const source = `import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';
const imports = {};
for (const { module, name } of WebAssembly.Module.imports(wasm)) (imports[module] ??= {})[name] = () => {};
export default {
  async fetch(req) {
    const n = Number(new URL(req.url).searchParams.get('n') || 0);
    let pages = 0;
    for (let i = 0; i < n; i++) pages += new WebAssembly.Instance(wasm, imports).exports.memory.buffer.byteLength >> 16;
    return new Response(String(pages));
  },
};
`;
const w = await startWorkerd(source);
try {
  const time = async (n) => {
    const t = performance.now();
    const r = await fetch(`${w.url}/?n=${n}`);
    await r.text();
    return performance.now() - t;
  };
  await time(N); // warm: the first request also runs the module's top level
  const diffs = [];
  for (let i = 0; i < rounds; i++) {
    const [a, b] = [await time(0), await time(N)];
    diffs.push((b - a) / N);
  }
  diffs.sort((x, y) => x - y);
  const q = (p) => diffs[Math.min(diffs.length - 1, Math.floor(p * diffs.length))].toFixed(3);
  console.log(`workerd: instantiate the module: median ${q(0.5)} ms (p10 ${q(0.1)}, p90 ${q(0.9)}; ${rounds} rounds of ${N})`);
} finally {
  await w.stop();
}
