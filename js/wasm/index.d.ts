// Types of healcache/wasm on Node: the same Cache as the native package. Every type of it, and the
// values this entry has: not `backend`, which only the Node entry exports.
export type * from '../node/index';
export { Cache, NOT_FOUND, ManualClock, WriteBehind, prometheusJoin } from '../node/index';

/** Test hooks of the WebAssembly build. */
export declare const __testing: {
  /** Panics inside the module (the instance is poisoned afterwards). */
  panic(): void;
  /** Whether the instance trapped. */
  isPoisoned(): boolean;
};
