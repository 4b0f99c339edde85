// `make bench-wasm`: healcache (WebAssembly build) against Map and lru-cache, in the same run.
// Prints the same bars as bench/node_bench.mjs, for the WebAssembly build.
import { Cache } from 'healcache/wasm';
import { run } from '../js/bench-harness.mjs';

run({ title: 'healcache (wasm)', Cache, subject: 'healcache-wasm' });
