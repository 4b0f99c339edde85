// ES module entry of healcache/wasm for Node.
import m from './node.js';

export const Cache = m.Cache;
export const NOT_FOUND = m.NOT_FOUND;
export const ManualClock = m.ManualClock;
export const WriteBehind = m.WriteBehind;
export const prometheusJoin = m.prometheusJoin;
export const __testing = m.__testing;
export default m;
