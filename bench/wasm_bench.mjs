// `make bench-wasm`: healcache (WebAssembly build) against Map and lru-cache, in the same run.
// Bar (issue 6): WASM get hit <= 2x lru-cache-with-ttl get.
import { Cache } from 'healcache/wasm';
import { run } from '../js/bench-harness.mjs';

run({ title: 'healcache (wasm)', Cache, subject: 'healcache-wasm' });
