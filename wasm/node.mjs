// ES module entry of healcache/wasm for Node.
import m from './node.js';

export const Cache = m.Cache;
export const __testing = m.__testing;
export default m;
