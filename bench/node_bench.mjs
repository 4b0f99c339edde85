// `make bench-node`: healcache (napi-rs addon) against Map and lru-cache, in the same run.
// Prints the bars: first read <= 1.2x lru-cache (with TTL), insert and overwrite <= 1.5x.
import { Cache } from 'healcache';
import { run } from '../js/bench-harness.mjs';

run({ title: 'healcache (node addon)', Cache, subject: 'healcache' });
