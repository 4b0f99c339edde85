// `make bench-node`: healcache (napi-rs addon) against Map and lru-cache, in the same run.
// Bars (issue 5): get hit <= 2x lru-cache-with-ttl get; set <= 2x lru-cache-with-ttl set.
import { Cache } from 'healcache';
import { run } from '../js/bench-harness.mjs';

run({ title: 'healcache (node addon)', Cache, subject: 'healcache' });
