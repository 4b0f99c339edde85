// Types of healcache/wasm/wire: the fleet's wire format for edge workers (an opt-in module, apart
// from the cache's). In a worker, instantiate it first with `initSync(module)` or `await init()`.

/** `[value key, lock key, fence key]` of `key` under the cache prefix (`l2Prefix`, "hc1" by default). */
export declare function l2Keys(prefix: string, key: string): [string, string, string];

/** What the fleet stored under a value key, decoded as the fleet's caches read it. */
export interface WireEntry {
  /** A value, a cached "not found", or a delete's tombstone. */
  kind: 'value' | 'not-found' | 'tombstone';
  /** The value (`undefined` unless `kind` is "value"): integers beyond 2^53 as BigInt, bytes as Uint8Array. */
  value: unknown;
  /** Whether a cache would serve it as fresh. */
  fresh: boolean;
  /** Milliseconds left fresh (`Infinity`: never stale; 0 when not fresh). */
  freshMs: number;
  /** The stale window after freshness, in ms. */
  graceMs: number;
  /** The fence token it was written with (16 bytes). */
  token: Uint8Array;
  /** Its tags with their versions when it was written. */
  tags: Array<[string, number]>;
}

/**
 * Decodes the bytes Redis holds under `valueKey` (a `GET`), given the key's `PTTL` in ms (-1: no
 * expiry, -2: gone). Throws an Error with code `CodecError` when they are not an envelope written
 * for that key.
 */
export declare function decodeEntry(valueKey: string, stored: Uint8Array, pttlMs: number): WireEntry;

/** Instantiates the module synchronously (web target only; Node needs nothing). */
export declare function initSync(module: BufferSource | WebAssembly.Module | { module: BufferSource | WebAssembly.Module }): void;
/** Instantiates the module from a URL, Response, bytes or module (web target only). */
export default function init(input?: unknown): Promise<void>;
