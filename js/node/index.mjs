// ES module entry of healcache for Node.js (the CommonJS entry does the work).
import healcache from './index.js';

export const Cache = healcache.Cache;
export const NOT_FOUND = healcache.NOT_FOUND;
export const backend = healcache.backend;
export const ManualClock = healcache.ManualClock;
export const WriteBehind = healcache.WriteBehind;
export const prometheusJoin = healcache.prometheusJoin;
export default healcache;
