// Which build the suite runs against: the napi-rs addon (default) or the WebAssembly build
// (TEST_WASM=1), as lightningcss does. The test files import `Cache` from here only.
export const WASM = Boolean(process.env.TEST_WASM);
const mod = WASM ? await import('healcache/wasm') : await import('healcache');
export const { Cache, NOT_FOUND, WriteBehind } = mod;
export const testing = mod.__testing;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The error `f()` throws (the test fails if it throws none). */
export const thrown = (f) => {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
};
