// A small typed user of the package: `tsc --noEmit -p tests/js/types` must accept it
// (types.test.mjs). The @ts-expect-error lines check that the types refuse misuse.
import { Cache, type CacheStats, type Entry, type HealcacheError } from 'healcache';
import { Cache as WasmCache } from 'healcache/wasm';
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

const w = new WasmCache<string>({ maxEntries: 10 });
w.set('a', 'b');
declare const bytes: Uint8Array;
initSync(bytes);
new EdgeCache<number>().set('x', n);

// @ts-expect-error maxEntries is a number
new Cache({ maxEntries: '10' });
// @ts-expect-error unknown option
new Cache({ maxEntrys: 10 });
// @ts-expect-error keys are strings
users.get(1);
// @ts-expect-error the value type is User
users.set('user:9', 'not a user');
