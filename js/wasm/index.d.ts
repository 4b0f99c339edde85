// Types of healcache/wasm on Node: the same Cache as the native package.
export * from '../node/index';

/** Test hooks of the WebAssembly build. */
export declare const __testing: {
  /** Panics inside the module (the instance is poisoned afterwards). */
  panic(): void;
  /** Whether the instance trapped. */
  isPoisoned(): boolean;
};
