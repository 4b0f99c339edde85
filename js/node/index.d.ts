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
  /** Test clock: TTLs, grace, refresh-ahead, XFetch and the read mirror read its time. Defaults to `performance.now()`. */
  clock?: ManualClock;
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
  /** Longest TTL of a cached "not found" answer, in ms: a `negativeTtl` (the cache's or a call's) above it is refused. Defaults to 60,000. */
  maxNegativeTtl?: number;
  /**
   * The weight of a value in bytes, for `maxBytes` and `maxEntryBytes`: a whole number from 0
   * to 2^53 - 1, else `InvalidConfig`. Defaults to: a string's length, the byteLength of an
   * ArrayBuffer or view (Buffer, Uint8Array), 0 for other values.
   */
  sizeOf?: (value: any, key: string) => number;
  /**
   * Called with every value the cache lets go, once the call that removed it has updated the
   * cache: `reason` is "evict" (room for others), "expire" (past its TTL), "set" (replaced) or
   * "delete" (`delete`, `clear`, a healing removal). A throw is ignored. Defaults to: none.
   */
  dispose?: (value: any, key: string, reason: DisposeReason) => void;
  /** Self-healing settings (see `HealingOptions`); changeable later with `setHealing` or `configSet`. */
  healing?: HealingOptions;
  /**
   * The host's hook for background work (an edge runtime's `(p) => ctx.waitUntil(p)`): the
   * refreshes and soft-timeout tails of calls that give no `waitUntil` of their own. Defaults to: none.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * A shared tier (L2) on Redis every process of a fleet reads, any language: `redis://[user:password@]host:port[/db]`
   * (Node only; the WebAssembly package refuses it). Values cross as MessagePack: null, booleans, numbers, BigInts
   * in 64 bits, strings, Uint8Array/Buffer (read back as Buffer), arrays and plain objects; `set` refuses
   * others with `ValueNotEncodable`. Defaults to: none.
   */
  redis?: string;
  /** First part of every L2 key. Defaults to "hc1". */
  l2Prefix?: string;
  /** Deadline of every shared-tier (L2) operation, in ms. Defaults to 100. */
  l2Timeout?: number;
  /** Invalidations kept while L2 is unreachable, replayed when it returns (oldest dropped beyond). Defaults to 10000. */
  l2RecoveryMax?: number;
  /** L2 payloads at least this long are lz4-compressed (kept only if that saves 12.5%). Defaults to 1024. */
  l2CompressMinBytes?: number;
  /** How long a delete's L2 tombstone fences out rebuilds that read before it, in ms. Defaults to 10000. */
  l2TombstoneTtl?: number;
  /**
   * Which loads take the fleet rebuild lock, so one instance of the fleet rebuilds a key: 'refresh' (background
   * refreshes try it and skip when another instance refreshes), 'all' (misses too: they wait for the holder's
   * value, status 'fleet-coalesced') or 'off'. A holder that lost its lease is fenced out ('fenced-out'): a newer
   * value always wins. Defaults to 'refresh'.
   */
  fleetLock?: 'off' | 'refresh' | 'all';
  /** How long a fleet rebuild lock lives without renewal, in ms (renewed every third of it while the loader runs). Defaults to 5000. */
  fleetLockLease?: number;
  /** How long a fleet lock holder keeps renewing at most, in ms; a slower loader is fenced out if another takes over. Defaults to 30000. */
  fleetLockMaxHold?: number;
  /** `ready()` stays true while the shared tier is unreachable (L1 and the loader serve). Defaults to false. */
  allowDegraded?: boolean;
}

/**
 * Self-healing settings, validated by the core; all changeable at runtime (`setHealing`, or by
 * core name with `configSet("healing.sample_rate", "0.02")`).
 */
export interface HealingOptions {
  /** Run intervals in the background every `verifyInterval` (Node; WASM hosts call `runHealingInterval`). Defaults to false. */
  enabled?: boolean;
  /** Share of live keys sampled per interval (0 to 1). Defaults to 0.01. */
  sampleRate?: number;
  /** Time between background intervals, in ms. Defaults to 5,000. */
  verifyInterval?: number;
  /** `verifyInterval`, by its former name (still taken, but not beside `verifyInterval`; `healingConfig()` shows it under this name). */
  verifyIntervalMs?: number;
  /** Repair drift (else only report it). Defaults to true. */
  autoRepair?: boolean;
  /** Verified samples per prefix in the rolling score. Defaults to 1,000. */
  scoreWindow?: number;
  /** Time a source may take per key before the sample counts as a failure, in ms. Defaults to 2,000. */
  sourceTimeout?: number;
  /** `sourceTimeout`, by its former name (still taken, but not beside `sourceTimeout`; `healingConfig()` shows it under this name). */
  sourceTimeoutMs?: number;
  /** Most keys asked of one source at once. Defaults to 16. */
  sourceConcurrency?: number;
  /** Most registered prefixes. Defaults to 1,024. */
  maxPrefixes?: number;
  /** Drift events kept for `driftEvents()`. Defaults to 1,000. */
  maxDriftEvents?: number;
  /** Most keys sampled in one interval. Defaults to 100,000. */
  maxSamples?: number;
  /**
   * With `redis`: L2 is verified once per fleet, by the instance holding a renewable lease per
   * prefix (else each instance verifies its own L1). Defaults to true. Not in WebAssembly.
   */
  fleetVerify?: boolean;
  /** How long a fleet verifier's lease lives without renewal, in ms (at least 1). Defaults to 5,000. Not in WebAssembly. */
  fleetVerifyLease?: number;
  /** Keys of L2 a fleet verifier walks per interval and prefix (1 to 10,000,000). Defaults to 10,000. Not in WebAssembly. */
  fleetVerifyScanBudget?: number;
}

/**
 * Every name `configSet` / `configGet` take for a healing setting: the core's snake_case name
 * (`sample_rate`), its JS name (`sampleRate`), its former names (`healing.verify_interval_ms`,
 * `verify_interval_ms`, in ms as every JS duration) and each of these under `healing.`
 * (`healing.sample_rate`, `healing.sampleRate`: the RESP server's CONFIG names). The `fleet*` ones
 * exist in the Node package only (with the shared tier; the WebAssembly package refuses them).
 */
export type HealingSettingName =
  | 'enabled' | 'healing.enabled'
  | 'sample_rate' | 'sampleRate' | 'healing.sample_rate' | 'healing.sampleRate'
  | 'verify_interval' | 'verifyInterval' | 'healing.verify_interval_ms' | 'verify_interval_ms'
  | 'healing.verify_interval' | 'healing.verifyInterval'
  | 'auto_repair' | 'autoRepair' | 'healing.auto_repair' | 'healing.autoRepair'
  | 'score_window' | 'scoreWindow' | 'healing.score_window' | 'healing.scoreWindow'
  | 'source_timeout' | 'sourceTimeout' | 'healing.source_timeout_ms' | 'source_timeout_ms'
  | 'healing.source_timeout' | 'healing.sourceTimeout'
  | 'source_concurrency' | 'sourceConcurrency' | 'healing.source_concurrency' | 'healing.sourceConcurrency'
  | 'max_prefixes' | 'maxPrefixes' | 'healing.max_prefixes' | 'healing.maxPrefixes'
  | 'max_drift_events' | 'maxDriftEvents' | 'healing.max_drift_events' | 'healing.maxDriftEvents'
  | 'max_samples' | 'maxSamples' | 'healing.max_samples' | 'healing.maxSamples'
  // Node only
  | 'fleet_verify' | 'fleetVerify' | 'healing.fleet_verify' | 'healing.fleetVerify'
  | 'fleet_verify_lease' | 'fleetVerifyLease' | 'healing.fleet_verify_lease_ms'
  | 'healing.fleet_verify_lease' | 'healing.fleetVerifyLease'
  | 'fleet_verify_scan_budget' | 'fleetVerifyScanBudget' | 'healing.fleet_verify_scan_budget'
  | 'healing.fleetVerifyScanBudget';

/**
 * What `healingConfig()` returns: every healing setting now, by JS name, except that the
 * interval and the source timeout are shown under their former names (`verifyIntervalMs`,
 * `sourceTimeoutMs`). The `fleet*` settings are there in the Node package only.
 */
export interface HealingConfig {
  enabled: boolean;
  sampleRate: number;
  /** `verifyInterval`, in ms. */
  verifyIntervalMs: number;
  autoRepair: boolean;
  scoreWindow: number;
  /** `sourceTimeout`, in ms. */
  sourceTimeoutMs: number;
  sourceConcurrency: number;
  maxPrefixes: number;
  maxDriftEvents: number;
  maxSamples: number;
  /** Node only (absent in WebAssembly). */
  fleetVerify?: boolean;
  /** In ms. Node only (absent in WebAssembly). */
  fleetVerifyLease?: number;
  /** Node only (absent in WebAssembly). */
  fleetVerifyScanBudget?: number;
}

/**
 * A source of truth: the key's current value, or `NOT_FOUND` when it does not exist. Throwing,
 * rejecting or returning `undefined` is a failed answer (skipped, counted in `sourceFailures`).
 */
export type Source<V> = (key: string) => V | NotFound | PromiseLike<V | NotFound>;

/** Options of `registerSource`. */
export interface SourceOptions<V> {
  /**
   * Whether the cached value and the source's are the same (e.g. canonical JSON). Defaults to:
   * strings and bytes (Buffer, typed arrays, ArrayBuffer) byte for byte, other values by `JSON.stringify` text.
   */
  compare?: (cached: V, fresh: V, key: string) => boolean;
}

/** Options of a URL-template source (Node only). */
export interface UrlSourceOptions<V> extends SourceOptions<V> {
  /** How a 2xx body becomes the value: a `Buffer`, UTF-8 text, or parsed JSON. Defaults to "buffer". */
  decode?: 'buffer' | 'text' | 'json';
  /** Put the key without the registered prefix in the URL (`user:42` -> `/users/42`). Defaults to false. */
  stripPrefix?: boolean;
  /** Bodies larger than this are a failed answer. Defaults to 1 MiB. */
  maxBodyBytes?: number;
  /** Hosts that may resolve to loopback, private, link-local or other non-public addresses (`true`: any). Defaults to none. */
  allowPrivate?: boolean | string[];
}

/** What one healing interval did (core `IntervalReport`). */
export interface IntervalReport {
  /** Keys drawn. */
  drawn: number;
  /** Keys verified (consistent + drift). */
  verified: number;
  /** Keys found consistent. */
  consistent: number;
  /** Keys found drifted. */
  drift: number;
  /** Drifted keys repaired. */
  repaired: number;
  /** Keys skipped: no source, source backed off, failed or refused the key, or the entry changed meanwhile. */
  skipped: number;
  /** Source calls that failed or timed out. */
  failures: number;
  /** The interval's duration, in ms. */
  durationMs: number;
  /** True when another interval was still running, so this call did nothing. */
  overlapped: boolean;
}

/** The score of one registered prefix. */
export interface PrefixScore {
  prefix: string;
  /** Consistent / verified over the last `scoreWindow` samples (1 before any). */
  score: number;
  /** Samples verified for this prefix, ever. */
  sampled: number;
  /** Drifted entries repaired for this prefix, ever. */
  repaired: number;
}

/** Healing totals. */
export interface HealingStats {
  /** Samples verified, ever (skipped ones not included). */
  totalSampled: number;
  /** Drifted entries repaired, ever. */
  totalRepaired: number;
  /** Mean score of the prefixes that have samples (1 when none has). */
  avgScore: number;
  /** Source calls that failed or timed out. */
  sourceFailures: number;
  /** Duration of the last interval, in ms. */
  lastIntervalMs: number;
  /** Drift found, ever (repaired or not). */
  totalDrift: number;
  /** Interval durations (same buckets as `loadLatency`). */
  intervalDuration: LatencyHistogram;
}

/** One drift found: the cache held something else than its source. */
export interface DriftEvent {
  key: string;
  prefix: string;
  /** When, on the cache's monotonic clock, in ms. */
  atMs: number;
  /** 8 hex digits of FNV-1a over the cached value's bytes or JSON text; "absent" for a cached "not found". */
  oldDigest: string;
  /** The same for the source's value; "absent" when the source said "not found". */
  newDigest: string;
  /** Whether it was repaired (false: autoRepair off, or a newer write won). */
  repaired: boolean;
}

/** Options of `set`. Here as in every method's options, another name is refused with `InvalidConfig` naming it; `null` is none. */
export interface SetOptions {
  /** Time-to-live of this entry in ms; `Infinity`: never expires. Defaults to the cache's `ttl`. */
  ttl?: number;
  /** Write only if the live entry has this version (0: only if the key has no entry; a cached "not found" is one, with its own version), else throw `VersionMismatch`. */
  ifVersion?: number;
  /**
   * Up to 16 tags of 1 to 128 bytes: `invalidateTag` of any of them invalidates the entry (with a shared tier, in
   * every instance). Node only: the WebAssembly package throws `InvalidConfig`.
   */
  tags?: string[];
}

/** A batch loader: resolves to the values of the keys it found (a key left out is not found). */
export type BatchLoader<V> = (keys: string[]) => Map<string, V> | Record<string, V> | Promise<Map<string, V> | Record<string, V>>;

/** Options of `writeThrough`. */
export interface WriteThroughOptions {
  /** Milliseconds the cached value lives (default: the cache's `ttl`). */
  ttl?: number;
  /** Remove the key from the cache instead of caching the value. */
  invalidate?: boolean;
}

/** Options of `warm`. */
export interface WarmOptions {
  /** Loader calls at once, 1 to 1,024 (default 8); fewer when that many batches would load more than `maxInFlight` keys. */
  concurrency?: number;
  /** Keys per loader call, 1 to `maxInFlight` (default 100, or `maxInFlight` when lower). */
  batch?: number;
  /** Share of the keys that must be answered for `ready()` (default 1). */
  minShare?: number;
  /** Most keys a pattern may match, 1 to 10,000,000 (default 100,000); more is refused before any load. */
  maxKeys?: number;
}

/** What `warm` did. */
export interface WarmReport {
  total: number;
  found: number;
  notFound: number;
  failed: number;
  /** The first failure's message. */
  error?: string;
}

/** Options of `invalidateTag`. */
export interface InvalidateTagOptions {
  /** Remove the entries instead of making them stale (no fallback within the grace window). Defaults to false. */
  hard?: boolean;
}

/** Options of `close`. */
export interface CloseOptions {
  /** How long to wait for the shared tier's writes under way, in ms (0: none; else positive, at most 100 years). Defaults to 5000. */
  timeout?: number;
}

/** Options of `delete`. */
export interface DeleteOptions {
  /** Remove only if the live entry has this version, else throw `VersionMismatch`. */
  ifVersion?: number;
}

/** Why `dispose` was called (lru-cache's names). */
export type DisposeReason = 'evict' | 'expire' | 'set' | 'delete';

/** What a loader gets besides the key. */
export interface LoaderContext {
  /** Aborted once no caller waits for this load any more, or the load timed out. */
  readonly signal: AbortSignalLike;
}

/** A loader: the value of `key`, or `NOT_FOUND`, sync or as a promise. */
export type Loader<V> = (key: string, context: LoaderContext) => V | NotFound | PromiseLike<V | NotFound>;

/** The part of `AbortSignal` that `getOrLoad` uses. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  /** What an aborted call rejects with. */
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * Options of `getOrLoad` and `fetch` (the same: `getOrLoad` is `fetch` without the status): per-call
 * overrides of the cache's settings, plus `signal` and `waitUntil`. Another name is refused with
 * `InvalidConfig` (`err.field` names it) before any load; `null` is no options.
 */
export interface FetchOptions {
  /**
   * Stops this caller's wait: it rejects with `signal.reason`, as `fetch()` does (at once when
   * already aborted, a hit too); the load goes on for the others. Anything without `aborted`,
   * `addEventListener` and `removeEventListener` is refused with `InvalidConfig` (field `signal`).
   */
  signal?: AbortSignalLike | null;
  /** The host's hook for the background work this call starts (edge: `(p) => ctx.waitUntil(p)`). */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** TTL of a loaded value in ms; `Infinity`: never expires. Defaults to the cache's `ttl`. */
  ttl?: number;
  /** TTL of a "not found" answer in ms. Defaults to the cache's `negativeTtl`. */
  negativeTtl?: number;
  /** Serve a stale value at once while refreshing. Defaults to the cache's `staleWhileRevalidate`. */
  staleWhileRevalidate?: boolean;
  /** XFetch early refresh on this read, either way (`true` turns it on for a cache built without it). Defaults to the cache's `xfetch`. */
  xfetch?: boolean;
  /** Soft timeout of this load in ms. Defaults to the cache's `loadSoftTimeout`. */
  softTimeout?: number;
  /** The loaded value's tags (as `set`'s), recorded from before the load. Node only. */
  tags?: string[];
}

/** Options of `getOrLoad`: those of `fetch`. */
export type GetOrLoadOptions = FetchOptions;

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
  | 'negative-loaded'
  | 'l2-hit'
  | 'l2-skipped'
  | 'fleet-coalesced'
  | 'fenced-out'
  | 'revalidated';

/** The answer of `fetch`: the value (`undefined` when the key does not exist at the source) and its status. */
export interface Fetched<V> {
  value: V | undefined;
  status: FetchStatus;
}

/**
 * A clock moved only by hand, for deterministic tests: `new Cache({ clock })` reads its time from
 * it. Load timeouts still sleep on the host's timer (wall time).
 */
export declare class ManualClock {
  constructor();
  /** Moves the clock forward by `ms` milliseconds (finite, not negative). */
  advance(ms: number): void;
  /** The clock's time in milliseconds (it starts near 0). */
  now(): number;
}

/** One item of a write-behind batch: the newest value of a key, or its deletion. */
export type WriteOp<V = unknown> = { op: 'put'; key: string; value: V } | { op: 'delete'; key: string };

/** An item a write-behind queue gave up (attempts exhausted, or left at `close`). */
export type FailedWrite<V = unknown> = WriteOp<V> & {
  /** Writer calls that included it (0: never sent before `close`'s deadline). */
  attempts: number;
  /** The writer's last error as text (`"Name: message"`), or why it was not sent. */
  error: string;
};

/** Settings of a `WriteBehind`; each unset one takes the default shown. */
export interface WriteBehindOptions {
  /** Items the queue holds at most, the batch being written included (1 to 10,000,000). Default 10,000. */
  maxQueue?: number;
  /** Items per writer call at most (1 to `maxQueue`). Default 100, or `maxQueue` when lower. */
  batch?: number;
  /** A partial batch is sent once its oldest item waited this long (ms, up to a day). Default 100. */
  flushInterval?: number;
  /** First retry delay of a failed batch (ms, up to `retryMax`). Default 100. */
  retryMin?: number;
  /** Longest retry delay (ms, up to a day). Default 5000. */
  retryMax?: number;
  /** Writer calls per batch at most, the first included (1 to 1000). Default 10. */
  attempts?: number;
  /** A write to a full queue: `'reject'` (code QueueFull at once, the default) or wait up to `block` ms for room. */
  onFull?: 'reject' | { block: number };
}

/** Counters and gauges of a `WriteBehind`. */
export interface WriteBehindStats {
  /** Items queued now, the batch being written included. */
  queueDepth: number;
  /** `maxQueue`. */
  queueCapacity: number;
  /** How long the oldest item has waited, in ms (0 when empty). */
  lag: number;
  /** Batches the writer accepted. */
  batches: number;
  /** Items the writer accepted. */
  flushedItems: number;
  /** Writer calls that failed (each retry counts). */
  failures: number;
  /** Items given up: attempts exhausted, or left at `close`. */
  failed: number;
  /** Items dropped from a failed batch because a newer write of their key was queued. */
  superseded: number;
  /** Given-up items no longer kept (beyond the newest `maxQueue`); still counted in `failed`. */
  failedDropped: number;
  /** Batches accepted per size bucket of `batchSizeBuckets`, a last one for larger batches. */
  batchSizes: number[];
  /** Upper bounds of the batch-size buckets. */
  batchSizeBuckets: number[];
  /** Whether `close()` was called. */
  closed: boolean;
}

/**
 * Write-behind: a write lands in the cache at once (and in L2 with a shared tier) and reaches
 * `writer` later, in coalesced (last value wins), bounded, retried batches, called one at a time.
 * The queue lives in this process: call `close()` before exit (when the event loop runs dry, an
 * open queue sends what it holds within 2 s and reports on stderr what it could not). Node package only: the
 * WebAssembly package refuses it with code InvalidConfig.
 */
export declare class WriteBehind<V = unknown> {
  constructor(cache: Cache<V>, writer: (batch: WriteOp<V>[]) => Promise<void> | void, options?: WriteBehindOptions | null);
  /** Writes the cache as `cache.set` does and queues the write; resolves to the entry's version. Rejects with code QueueFull or Closed, changing nothing. */
  set(key: string, value: V, options?: { ttl?: number } | null): Promise<number>;
  /** Removes `key` from the cache and queues its deletion; resolves to whether a live entry was removed. */
  delete(key: string): Promise<boolean>;
  /** Stops accepting writes, flushes for at most `timeoutMs` (default 5000); resolves to the items left unflushed. */
  close(timeoutMs?: number): Promise<number>;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** The items given up, oldest first; `{ take: true }` removes them. */
  failed(options?: { take?: boolean } | null): FailedWrite<V>[];
  /** The counters and gauges now. */
  stats(): WriteBehindStats;
  /** The metrics in the Prometheus text format, labelled `cache="<name>"`. */
  prometheus(name: string): string;
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
  /** Shared tier (0 without one): reads that found a fresh value in L2. */
  l2Hits: number;
  /** L2 reads that found nothing usable. */
  l2Misses: number;
  /** L2 operations that failed (I/O, refusals, deadlines). */
  l2Errors: number;
  /** Of those, deadlines passed. */
  l2Timeouts: number;
  /** L2 operations skipped while the breaker was open. */
  l2Skipped: number;
  /** Values and tombstones written to L2. */
  l2Writes: number;
  /** L2 writes refused by the fence (a newer value was stored). */
  l2FencedOut: number;
  /** Stored values that did not decode, and values that could not be encoded. */
  l2CodecErrors: number;
  /** The breaker: 0 closed, 1 open, 2 half-open. */
  l2BreakerState: number;
  /** Times the breaker opened. */
  l2BreakerOpens: number;
  /** Invalidations waiting for L2 to return. */
  l2RecoveryDepth: number;
  /** Invalidations dropped at the recovery queue's bound. */
  l2RecoveryDropped: number;
  /** Fleet rebuild locks taken by this process. */
  l2LockAcquired: number;
  /** Try-locks that found another instance rebuilding. */
  l2LockContended: number;
  /** Background refreshes skipped because another instance was refreshing the key. */
  l2LockSkipped: number;
  /** Waits for another instance's rebuild that gave up and loaded locally. */
  l2LockTimeouts: number;
  /** Leases lost while a loader ran. */
  l2LockLeaseLost: number;
  /** Invalidation messages published on the bus (writes, deletes). */
  l2BusSent: number;
  /** Bus publishes that failed (receivers notice the gap). */
  l2BusPublishFailed: number;
  /** Invalidation messages received from other instances. */
  l2BusReceived: number;
  /** L1 copies dropped by other instances' writes. */
  l2BusInvalidated: number;
  /** Lost bus messages noticed; each made older L1 entries suspect (re-read from L2). */
  l2BusGaps: number;
  /** Received bytes that were not a bus message. */
  l2BusMalformed: number;
  /** Suspect L1 entries (written before a bus gap or an L2 outage) re-read from L2. */
  l2SuspectRereads: number;
  /** Of those, copies L2 confirmed by their token alone (status 'revalidated'). */
  l2Revalidated: number;
  /** Tag invalidations made by this process. */
  l2TagInvalidations: number;
  /** Tag invalidations received from other instances. */
  l2TagReceived: number;
  /** L2 values read as misses because one of their tags was invalidated since. */
  l2TagOutdated: number;
  /** Fleet verifier leases taken by this process (it became a healing prefix's verifier). */
  l2VerifierAcquired: number;
  /** Fleet verifier leases lost (expired or taken over). */
  l2VerifierLost: number;
  /** Healing prefixes this process verifies for the fleet now. */
  l2VerifierHeld: number;
  /** L2 entries this process sampled as a fleet verifier. */
  l2VerifierSampled: number;
  /** Drifted L2 entries this process repaired as a fleet verifier. */
  l2VerifierRepaired: number;
  /** How long foreground misses waited for another instance's rebuild. */
  l2LockWait: LatencyHistogram;
  /** From another instance's publish of an invalidation to its receipt here (wall clocks). */
  l2BusLatency: LatencyHistogram;
  /** Latency of L2 operations. */
  l2Latency: LatencyHistogram;
}

/** The stable `err.code` values: the core's error variants, plus JS argument errors, `Poisoned` and `HEALCACHE_NOT_INITIALIZED` (WASM). */
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
  | 'HEALCACHE_NOT_INITIALIZED'
  | 'ValueNotEncodable'
  | 'L2Unavailable'
  | 'QueueFull'
  | 'Closed'
  | 'ERR_INVALID_ARG_TYPE';

/** The errors healcache throws (a loader's own rejection is passed on unchanged instead). */
export interface HealcacheError extends Error {
  code: ErrorCode;
  /**
   * `InvalidConfig`: the option at fault, as spelled in the options given (a cache's or a call's;
   * `healing.` before a healing setting), or `options` when the options are not an object.
   */
  field?: string;
  /**
   * `InvalidConfig`: what is wrong with the field, the message after its name; `InvalidKey`: why
   * the key was refused.
   */
  reason?: string;
  /** `VersionMismatch`: the version the caller expected (0: absent). */
  expected?: number;
  /** `VersionMismatch`: the entry's version now (0: absent). */
  current?: number;
  /** `KeyTooLong`: the key's length in UTF-8 bytes. */
  len?: number;
  /** `ValueTooLarge`: the entry's weight in bytes (key length plus value weight). */
  weight?: number;
  /** The bound refused at: `KeyTooLong` (bytes), `ValueTooLarge` (bytes), `TooManyLoads`, `QueueFull`. */
  max?: number;
  /** `LoadTimeout`: the timeout that ended the load, in ms. */
  afterMs?: number;
}

/**
 * A bounded cache from string keys to JS values, with TTLs, versions and coalesced loads.
 * `new Cache<User>()` types its values; a plain `new Cache()` holds anything, as `new Map()`
 * does, so plain JavaScript (checked by an editor) reads its values without casts.
 */
export declare class Cache<V = any> {
  constructor(options?: CacheOptions);
  /** The value of `key`, or undefined. A hit returns the very value that was stored. */
  get(key: string): V | undefined;
  /** The live entry of `key` with its version and remaining TTL, or undefined. */
  getEntry(key: string): Entry<V> | undefined;
  /** The value of `key`'s live entry without counting a read or changing its eviction standing. */
  peek(key: string): V | undefined;
  /** Milliseconds until `key`'s live entry expires: `Infinity` if never, 0 if `key` has none. */
  getRemainingTTL(key: string): number;
  /** Whether `key` has a live entry (not counted as a read). */
  has(key: string): boolean;
  /** The version of `key`'s live entry (a cached "not found" included), 0 if none. */
  version(key: string): number;
  /** Stores `value`; returns the entry's new version. */
  set(key: string, value: V, options?: SetOptions | null): number;
  /** Compare-and-set: writes only if `key`'s live version is `expected` (0: absent); an `ifVersion` option is refused. */
  setIfVersion(key: string, value: V, expected: number, options?: Omit<SetOptions, 'ifVersion'> | null): number;
  /** Removes `key`; returns whether a live entry was removed. */
  delete(key: string, options?: DeleteOptions | null): boolean;
  /**
   * Invalidates every entry written with `tag`: made stale (a fallback within its grace window; one that never
   * expires, for `grace` from now) or, with `hard`, removed, stale ones too; with a shared tier, in every instance
   * and in L2 (rejects with `L2Unavailable` when L2 cannot be reached; this process's entries are invalidated all
   * the same). Resolves to how many fresh entries of this process it invalidated (a stale one that `hard` removes
   * is not counted).
   */
  invalidateTag(tag: string, options?: InvalidateTagOptions | null): Promise<number>;
  /**
   * Write-through: `writer(key, value)` (the source of truth's write) first, then the cache (and with a shared
   * tier L2 and the bus, awaited within `l2Timeout`); resolves to the new version (0 with `invalidate`). A
   * writer's rejection reaches the caller as it is and the cache is left as it was. Node package only.
   */
  writeThrough(key: string, value: V, writer: (key: string, value: V) => unknown, options?: WriteThroughOptions | null): Promise<number>;
  /**
   * The values of `keys` found, each read as `fetch` reads it; the keys no layer could answer are loaded by one
   * `loader(keys)` call resolving to a Map (or an object) of the keys it found. At most `maxInFlight` distinct
   * keys. Node package only.
   */
  getMany(keys: readonly string[], loader: BatchLoader<V>, options?: { ttl?: number } | null): Promise<Map<string, V>>;
  /**
   * Loads `keys` before traffic: `batch` keys per `loader` call, `concurrency` calls at once; `ready()` is false
   * while it runs. Given a string, warms the keys the shared tier holds that match it as a glob (`*`, `?`,
   * `[...]`). Node package only.
   */
  warm(keysOrPattern: readonly string[] | string, loader: BatchLoader<V>, options?: WarmOptions | null): Promise<WarmReport>;
  /** For a readiness probe: no `warm` running, enough keys answered, L2 answering unless the `allowDegraded` option. */
  ready(): boolean;
  /** Keys of the warm-ups so far. */
  warmProgress(): { answered: number; failed: number; total: number };
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
   * answering `NOT_FOUND` (or a cached "not found") rejects with code `NotFound`. Takes the
   * per-call options of `fetch` (`ttl`, `negativeTtl`, ...), which this is without the status.
   */
  getOrLoad(
    key: string,
    loader: Loader<V>,
    options?: GetOrLoadOptions | null,
  ): Promise<V>;
  /**
   * `getOrLoad` with every stampede layer and the status of what happened: stale values within
   * `grace`, background refreshes, negative caching (the loader may return `NOT_FOUND`).
   */
  fetch(
    key: string,
    loader: Loader<V>,
    options?: FetchOptions | null,
  ): Promise<Fetched<V>>;

  /**
   * Registers (or replaces) the source of truth of keys starting with `prefix`; the longest
   * registered prefix of a key wins. In Node, `source` may be a URL template
   * (`"https://api.internal/users/{key}"`); in WebAssembly that throws `InvalidConfig` (register a
   * function that calls `fetch()`).
   */
  registerSource(prefix: string, source: Source<V>, options?: SourceOptions<V>): void;
  registerSource(prefix: string, urlTemplate: string, options?: UrlSourceOptions<V>): void;
  /** Removes the source of `prefix` and its score; returns whether one was registered. */
  unregisterSource(prefix: string): boolean;
  /** Runs one healing interval now; reads after it resolves see every repair. */
  verifyNow(): Promise<IntervalReport>;
  /** `verifyNow`, for a host's scheduler (a cron trigger, an alarm in an edge worker). */
  runHealingInterval(): Promise<IntervalReport>;
  /** The score of a registered prefix, or undefined. */
  score(prefix: string): PrefixScore | undefined;
  /** The scores of every registered prefix, sorted by prefix. */
  scores(): PrefixScore[];
  /** Healing totals. */
  healingStats(): HealingStats;
  /** The most recent drift events, oldest first (at most `maxDriftEvents`). */
  driftEvents(): DriftEvent[];
  /** Changes healing settings, validated by the core: all or none. */
  setHealing(settings: HealingOptions): void;
  /** The healing settings now (see `HealingConfig` for the names). */
  healingConfig(): HealingConfig;
  /** Sets one runtime setting by any of its names, from text (`"0.02"`) or a number/boolean; nothing changes on error. */
  configSet(name: HealingSettingName, value: string | number | boolean): void;
  /** One runtime setting by any of its names, as text. */
  configGet(name: HealingSettingName): string;
  /**
   * Stops self-healing (the background loop ends for good and every source is unregistered; entries stay, and
   * healing can still be run by hand: a source registered later answers `verifyNow`, as in Python) and, with a
   * shared tier, waits until the L2 writes under way (with their bus messages) are sent, for `timeout` ms at most,
   * then closes the Redis connections. Resolves to the writes still under way at the deadline (0 without a shared
   * tier). The cache stays usable from L1; later L2 operations are skipped. Await it before a process exits.
   * A bad `timeout` throws `InvalidConfig` (field `timeout`) before anything is stopped.
   */
  close(options?: CloseOptions | null): Promise<number>;
  /** `close()` without waiting for it, for a `using` declaration (`await using` waits). */
  [Symbol.dispose](): void;
  /** `close()`, awaited, for an `await using` declaration. */
  [Symbol.asyncDispose](): Promise<void>;
  /** Keys of the live entries, in no particular order (a snapshot taken when iteration starts). */
  keys(): IterableIterator<string>;
  /** Values of the live entries, in the order of `keys()`; not counted as reads. */
  values(): IterableIterator<V>;
  /** `[key, value]` of the live entries, in the order of `keys()`; not counted as reads. */
  entries(): IterableIterator<[string, V]>;
  /** `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]>;
}

declare global {
  interface SymbolConstructor {
    /** The method a `using` declaration calls (Node 20 and current hosts have it). */
    readonly dispose: unique symbol;
    /** The method an `await using` declaration calls. */
    readonly asyncDispose: unique symbol;
  }
}

/**
 * What serves this process: `"native"` (the napi-rs addon: a local build or the
 * `@healcache/<platform>` package) or `"wasm"` (the WebAssembly build, when no native binary fits
 * this platform or `HEALCACHE_BACKEND=wasm`). Only the Node entry has it.
 */
export declare const backend: 'native' | 'wasm';
/**
 * The Prometheus expositions of several caches (each `prometheus(name)`'s text) as one that
 * strict parsers accept: each family's HELP and TYPE lines once, then all its samples
 * (concatenated texts repeat them). Throws code InvalidConfig (field "texts") when two texts hold
 * the same series: two caches given one name. Node package only: the WebAssembly package refuses
 * it with code InvalidConfig.
 */
export declare function prometheusJoin(texts: string[]): string;
