// Types of healcache for Node.js (the same `Cache` as `healcache/wasm`).

/** Options of `new Cache(options)`; every one is optional and validated by the core. */
export interface CacheOptions {
  /** Maximum number of entries. Defaults to 10,000. */
  maxEntries?: number;
  /** Maximum total weight in bytes: key length + `sizeOf(value)` per entry. Defaults to unbounded. */
  maxBytes?: number;
  /** Default time-to-live of an entry, in milliseconds. Defaults to no expiry. */
  ttl?: number;
  /** Longest key accepted, in UTF-8 bytes. Defaults to 4,096. */
  maxKeyLen?: number;
  /** Heaviest single entry accepted, in bytes. Defaults to `maxBytes`, else 64 MiB. */
  maxEntryBytes?: number;
  /** Most distinct keys loading at once through `getOrLoad`. Defaults to 10,000. */
  maxInFlight?: number;
  /** Time a load may take before every waiter gets a `LoadTimeout` error, in ms. Defaults to none. */
  loadTimeout?: number;
  /** Number of lock shards, a power of two up to 256. Defaults to one per 4,096 entries, at most 64. */
  shards?: number;
  /** Seed of the cache's random generator (eviction sampling). Defaults to `crypto.getRandomValues`. */
  seed?: number | bigint;
  /** Window after an entry's TTL during which `fetch`/`getOrLoad` may still serve its stale value, in ms. Defaults to none. */
  grace?: number;
  /** Within `grace`, serve the stale value at once and refresh it in the background (needs `grace`). Defaults to false. */
  staleWhileRevalidate?: boolean;
  /** A load with a stale value to fall back on returns it after this long and finishes in the background, in ms. Defaults to none. */
  loadSoftTimeout?: number;
  /** XFetch probabilistic early refresh of hot keys before they expire (`fetch`/`getOrLoad`). Defaults to false. */
  xfetch?: boolean;
  /** XFetch's beta: above 1 refreshes earlier, below 1 later (above 0, at most 1000). Defaults to 1. */
  xfetchBeta?: number;
  /** Reads of a value written longer ago than this refresh it once in the background, in ms. Defaults to none. */
  refreshAfter?: number;
  /** Each TTL is stretched by a random fraction in [0, ttlJitter), so keys written together do not expire together (0 to 1). Defaults to 0. */
  ttlJitter?: number;
  /** TTL of cached "not found" answers (a loader returning `NOT_FOUND`), in ms. Defaults to none (not cached). */
  negativeTtl?: number;
  /** Largest share of `maxEntries` that cached "not found" answers may take (0 to 1). Defaults to 0.1. */
  maxNegativeShare?: number;
  /**
   * The weight of a value in bytes, for `maxBytes` and `maxEntryBytes`. Defaults to: a string's
   * length, the byteLength of an ArrayBuffer or view (Buffer, Uint8Array), 0 for other values.
   */
  sizeOf?: (value: any, key: string) => number;
}

/** Options of `set`. */
export interface SetOptions {
  /** Time-to-live of this entry in ms; `Infinity`: never expires. Defaults to the cache's `ttl`. */
  ttl?: number;
  /** Write only if the live entry has this version (0: only if absent), else throw `VersionMismatch`. */
  ifVersion?: number;
}

/** Options of `delete`. */
export interface DeleteOptions {
  /** Remove only if the live entry has this version, else throw `VersionMismatch`. */
  ifVersion?: number;
}

/** The part of `AbortSignal` that `getOrLoad` uses. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** Options of `getOrLoad`. */
export interface GetOrLoadOptions {
  /** Stops this caller's wait (it rejects with code `Cancelled`); the load goes on for the others. */
  signal?: AbortSignalLike;
}

/** Options of `fetch`: per-call overrides of the cache's settings, plus `signal`. */
export interface FetchOptions extends GetOrLoadOptions {
  /** TTL of a loaded value in ms; `Infinity`: never expires. Defaults to the cache's `ttl`. */
  ttl?: number;
  /** TTL of a "not found" answer in ms. Defaults to the cache's `negativeTtl`. */
  negativeTtl?: number;
  /** Serve a stale value at once while refreshing. Defaults to the cache's `staleWhileRevalidate`. */
  staleWhileRevalidate?: boolean;
  /** `false` turns XFetch off for this read (it cannot turn it on). Defaults to the cache's `xfetch`. */
  xfetch?: boolean;
  /** Soft timeout of this load in ms. Defaults to the cache's `loadSoftTimeout`. */
  softTimeout?: number;
}

/** What a `fetch` did (the core's `Status`). */
export type FetchStatus =
  | 'hit'
  | 'loaded'
  | 'coalesced'
  | 'stale'
  | 'stale-fail-safe'
  | 'stale-soft-timeout'
  | 'early-refresh'
  | 'refresh-ahead'
  | 'negative-hit'
  | 'negative-loaded';

/** The answer of `fetch`: the value (`undefined` when the key does not exist at the source) and its status. */
export interface Fetched<V> {
  value: V | undefined;
  status: FetchStatus;
}

/** What a loader returns for a key that does not exist at the source (cached for `negativeTtl`). */
export declare const NOT_FOUND: unique symbol;
/** The type of `NOT_FOUND`. */
export type NotFound = typeof NOT_FOUND;

/** Load-latency histogram: `counts[i]` loads took at most 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms (last: more). */
export interface LatencyHistogram {
  counts: number[];
  /** Sum of all load durations, in nanoseconds. */
  sumNanos: number;
}

/** A live entry with its metadata. */
export interface Entry<V> {
  value: V;
  /** The entry's version (monotonic per cache, never 0). */
  version: number;
  /** Milliseconds left before expiry; `undefined` if it never expires. */
  expiresIn: number | undefined;
}

/** Every counter of a cache, as a plain object. */
export interface CacheStats {
  /** Reads that found a live entry. */
  hits: number;
  /** Reads that found nothing live. */
  misses: number;
  /** Writes that created an entry. */
  inserts: number;
  /** Writes that replaced an entry. */
  updates: number;
  /** Entries removed to make room. */
  evictions: number;
  /** Entries removed because their TTL passed. */
  expirations: number;
  /** Entries stored now (expired ones not yet swept included). */
  entries: number;
  /** Total weight stored now, in bytes. */
  weight: number;
  /** Loader calls started by `getOrLoad` (one per flight). */
  loads: number;
  /** Callers that joined a flight already under way. */
  coalesced: number;
  /** Loads that ended with the loader's error. */
  loadErrors: number;
  /** Loads whose loader panicked (Rust loaders only). */
  loadPanics: number;
  /** Loads that hit `loadTimeout`. */
  loadTimeouts: number;
  /** Loaded values not stored because a newer write happened during the load. */
  fencedWrites: number;
  /** Loaded values not stored because they were too large. */
  oversizeRejections: number;
  /** Flights under way now. */
  inFlight: number;
  /** Stale values served at once while refreshing (stale-while-revalidate). */
  staleServedSwr: number;
  /** Stale values served because the load failed or timed out (fail-safe). */
  staleServedFailSafe: number;
  /** Stale values served because the load passed its soft timeout. */
  staleServedSoftTimeout: number;
  /** XFetch early refreshes started. */
  earlyRefreshes: number;
  /** Refresh-ahead refreshes started. */
  refreshAhead: number;
  /** Reads answered by a cached "not found". */
  negativeHits: number;
  /** Cached "not found" answers stored now. */
  negativeEntries: number;
  /** "Not found" answers not cached because negatives had their full share of capacity. */
  negativeRefused: number;
  /** Durations of loader calls. */
  loadLatency: LatencyHistogram;
}

/** The stable `err.code` values: the core's error variants, plus JS argument errors and `Poisoned` (WASM). */
export type ErrorCode =
  | 'InvalidConfig'
  | 'KeyTooLong'
  | 'ValueTooLarge'
  | 'VersionMismatch'
  | 'LoaderError'
  | 'LoaderPanicked'
  | 'LoadTimeout'
  | 'RecursiveLoad'
  | 'TooManyLoads'
  | 'NotFound'
  | 'InvalidKey'
  | 'Cancelled'
  | 'Poisoned'
  | 'ERR_INVALID_ARG_TYPE';

/** The errors healcache throws (a loader's own rejection is passed on unchanged instead). */
export interface HealcacheError extends Error {
  code: ErrorCode;
  /** `InvalidConfig`: the option at fault, as spelled in `CacheOptions`. */
  field?: string;
  /** `VersionMismatch`: the version the caller expected (0: absent). */
  expected?: number;
  /** `VersionMismatch`: the entry's version now (0: absent). */
  current?: number;
}

/** A bounded cache from string keys to JS values, with TTLs, versions and coalesced loads. */
export declare class Cache<V = unknown> {
  constructor(options?: CacheOptions);
  /** The value of `key`, or undefined. A hit returns the very value that was stored. */
  get(key: string): V | undefined;
  /** The live entry of `key` with its version and remaining TTL, or undefined. */
  getEntry(key: string): Entry<V> | undefined;
  /** Whether `key` has a live entry (not counted as a read). */
  has(key: string): boolean;
  /** The version of `key`'s live entry, 0 if none. */
  version(key: string): number;
  /** Stores `value`; returns the entry's new version. */
  set(key: string, value: V, options?: SetOptions): number;
  /** Compare-and-set: writes only if `key`'s live version is `expected` (0: absent). */
  setIfVersion(key: string, value: V, expected: number, options?: Omit<SetOptions, 'ifVersion'>): number;
  /** Removes `key`; returns whether a live entry was removed. */
  delete(key: string, options?: DeleteOptions): boolean;
  /** Removes every entry. */
  clear(): void;
  /** Removes every expired entry now; returns how many. Call it from a timer the host owns. */
  purgeExpired(): number;
  /** Every counter. */
  stats(): CacheStats;
  /** Every counter in the Prometheus text exposition format, labelled `cache="<name>"`. */
  prometheus(name: string): string;
  /** Number of stored entries (expired ones not yet swept included). */
  readonly size: number;
  /**
   * The value of `key`, or loads it: concurrent callers of one key share one `loader` call and
   * its result; a rejection reaches every waiter as the same value and is not cached. A loader
   * answering `NOT_FOUND` (or a cached "not found") rejects with code `NotFound`.
   */
  getOrLoad(
    key: string,
    loader: (key: string) => V | NotFound | PromiseLike<V | NotFound>,
    options?: GetOrLoadOptions,
  ): Promise<V>;
  /**
   * `getOrLoad` with every stampede layer and the status of what happened: stale values within
   * `grace`, background refreshes, negative caching (the loader may return `NOT_FOUND`).
   */
  fetch(
    key: string,
    loader: (key: string) => V | NotFound | PromiseLike<V | NotFound>,
    options?: FetchOptions,
  ): Promise<Fetched<V>>;
}
