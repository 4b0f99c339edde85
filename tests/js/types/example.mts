// A small typed user of the package: `tsc --noEmit -p tests/js/types` must accept it
// (types.test.mjs). The @ts-expect-error lines check that the types refuse misuse.
import {
  Cache, ManualClock, NOT_FOUND, WriteBehind, type WriteOp, type WriteBehindStats, type CacheStats, type Entry, type Fetched, type FetchStatus, type HealcacheError,
  type IntervalReport, type PrefixScore, type HealingStats, type DriftEvent,
} from 'healcache';
import { Cache as WasmCache, NOT_FOUND as WASM_NOT_FOUND } from 'healcache/wasm';
import { initSync, Cache as EdgeCache } from 'healcache/wasm/web';

interface User {
  id: number;
  name: string;
}

const users = new Cache<User>({ maxEntries: 10_000, ttl: 60_000, seed: 42n });
const version: number = users.set('user:1', { id: 1, name: 'Ada' }, { ttl: 5_000 });
users.setIfVersion('user:1', { id: 1, name: 'Ada L.' }, version);
const u: User | undefined = users.get('user:1');
const e: Entry<User> | undefined = users.getEntry('user:1');
const s: CacheStats = users.stats();
const n: number = users.size + s.hits + (e?.version ?? 0) + (u?.id ?? 0);
const ac = new AbortController();
const loaded: Promise<User> = users.getOrLoad('user:2', async (key) => ({ id: 2, name: key }), { signal: ac.signal });
users.getOrLoad('user:3', () => ({ id: 3, name: 'sync' }));
loaded.catch((err: HealcacheError) => err.code === 'Cancelled' || err.field);
users.delete('user:1', { ifVersion: version });
users.purgeExpired();

const guarded = new Cache<User>({
  ttl: 60_000, grace: 600_000, staleWhileRevalidate: true, loadSoftTimeout: 200, xfetch: true, xfetchBeta: 1.5,
  refreshAfter: 30_000, ttlJitter: 0.1, negativeTtl: 5_000, maxNegativeShare: 0.2,
});
const fetched: Promise<Fetched<User>> = guarded.fetch('user:4', async (key) => (key ? { id: 4, name: key } : NOT_FOUND), {
  ttl: 1_000, negativeTtl: 100, staleWhileRevalidate: false, xfetch: false, softTimeout: 50, signal: ac.signal,
});
fetched.then(({ value, status }) => {
  const st: FetchStatus = status;
  const name: string | undefined = value?.name;
  return [st, name];
});
guarded.getOrLoad('user:5', () => WASM_NOT_FOUND);
const p8s: string = guarded.prometheus('users');
const lat: number = guarded.stats().loadLatency.counts[0] + guarded.stats().negativeHits + p8s.length;

// self-healing
const db = new Map<string, User>();
const healed = new Cache<User>({ healing: { enabled: true, sampleRate: 0.05, verifyIntervalMs: 1_000, autoRepair: true } });
healed.registerSource('user:', async (key) => db.get(key) ?? NOT_FOUND, {
  compare: (cached, fresh) => cached.id === fresh.id && cached.name === fresh.name,
});
healed.registerSource('user:admin:', (key) => db.get(key) ?? NOT_FOUND);
healed.registerSource('profile:', 'http://127.0.0.1:8080/profiles/{key}', { decode: 'json', stripPrefix: true });
const report: Promise<IntervalReport> = healed.verifyNow();
report.then((r) => r.repaired + r.drift + (r.overlapped ? 1 : 0));
const sc: PrefixScore | undefined = healed.score('user:');
const all: PrefixScore[] = healed.scores();
const hs: HealingStats = healed.healingStats();
const ev: DriftEvent[] = healed.driftEvents();
healed.setHealing({ sampleRate: 0.02 });
healed.configSet('healing.sample_rate', '0.02');
const rate: string = healed.configGet('healing.sample_rate');
const enabled: boolean = healed.healingConfig().enabled;
const every: number = healed.healingConfig().verifyIntervalMs + (healed.healingConfig().fleetVerifyLease ?? 0);
healed.setHealing({ verifyInterval: 10_000, sourceTimeout: 1_000 });
healed.configSet('sample_rate', 0.5);
healed.configSet('healing.fleet_verify_scan_budget', 5);
const strict = new Cache<User>({ negativeTtl: 90_000, maxNegativeTtl: 120_000 });
healed.unregisterSource('user:admin:');
void new WasmCache<User>().runHealingInterval();
healed.close();
void [sc?.score, all.length, hs.avgScore, ev[0]?.oldDigest, rate, enabled, every, strict];

const w = new WasmCache<string>({ maxEntries: 10 });
w.set('a', 'b');
declare const bytes: Uint8Array;
initSync(bytes);
new EdgeCache<number>().set('x', n);

// @ts-expect-error maxEntries is a number
new Cache({ maxEntries: '10' });
// conventions: peek, getRemainingTTL, iteration, dispose, the loader's signal
const conv = new Cache<User>({ dispose: (v: User, key: string, reason: 'evict' | 'expire' | 'set' | 'delete') => void [v, key, reason] });
const peeked: User | undefined = conv.peek('user:1');
const left: number = conv.getRemainingTTL('user:1');
for (const [k, v] of conv) void [k.toUpperCase(), v];
const ks: string[] = [...conv.keys()];
const vs: User[] = [...conv.values()];
conv[Symbol.dispose]();
void conv.getOrLoad('user:1', async (key, { signal }) => {
  if (signal.aborted) throw signal.reason;
  return { id: 1, name: key };
});
void [peeked, left, ks, vs];
// @ts-expect-error dispose reasons are named
new Cache({ dispose: (_v: unknown, _k: string, r: 'evicted') => void r });
// @ts-expect-error unknown option
new Cache({ maxEntrys: 10 });
// @ts-expect-error keys are strings
users.get(1);
// @ts-expect-error the value type is User
users.set('user:9', 'not a user');
// @ts-expect-error staleWhileRevalidate is a boolean
new Cache({ staleWhileRevalidate: 1, grace: lat });
// @ts-expect-error a loader returns a User or NOT_FOUND
guarded.fetch('user:6', () => 'nope');
// @ts-expect-error unknown fetch option
guarded.fetch('user:7', () => NOT_FOUND, { tll: 5 });
// @ts-expect-error a source returns a User or NOT_FOUND
healed.registerSource('user:', () => 42);
// @ts-expect-error sampleRate is a number
healed.setHealing({ sampleRate: '0.1' });
// @ts-expect-error unknown setting name
healed.configSet('healing.sample_rat', '0.1');
// @ts-expect-error healingConfig() shows the interval as verifyIntervalMs
void healed.healingConfig().verifyInterval;
// @ts-expect-error decode applies to URL templates only
healed.registerSource('user:', () => NOT_FOUND, { decode: 'json' });
// a test clock: the time of the caches given it
const clock = new ManualClock();
const timed = new Cache<User>({ ttl: 1_000, clock, seed: 1 });
clock.advance(999);
const at: number = clock.now() + (timed.getEntry('user:1')?.expiresIn ?? 0);
// @ts-expect-error a clock is a ManualClock, not any object with now()
new Cache({ clock: { now: () => at } });

// write-behind: the batch carries the cache's value type
const wb = new WriteBehind(users, async (batch: WriteOp<User>[]) => {
  for (const op of batch) if (op.op === 'put') op.value.name.toUpperCase();
}, { maxQueue: 1000, batch: 50, flushInterval: 100, onFull: { block: 1000 } });
const wbVersion: Promise<number> = wb.set('user:9', { id: 9, name: 'Bo' }, { ttl: 60_000 });
const wbStats: WriteBehindStats = wb.stats();
wb.failed({ take: true }).map((f) => f.error + f.attempts + wbStats.queueDepth);
wb.close(5_000).then((left: number) => left + 0, () => wbVersion);
// @ts-expect-error onFull is 'reject' or { block }
new WriteBehind(users, async () => {}, { onFull: 'wait' });
