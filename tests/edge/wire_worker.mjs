// An edge worker reading the fleet's entries with the opt-in wire module, through an
// HTTP-to-Redis service (here the test's, on 127.0.0.1): `GET <service>/<value key>` answers the
// stored bytes with the key's PTTL in the `x-pttl` header, 404 when Redis holds nothing.
import { initSync, l2Keys, decodeEntry } from 'healcache/wasm/wire';
import wasm from 'healcache/wasm/wire_bg.wasm';

initSync({ module: wasm });

// BigInt and bytes have no JSON form: tagged, so the test can compare them
const plain = (v) =>
  typeof v === 'bigint' ? { bigint: String(v) } : v instanceof Uint8Array ? { bytes: [...v] } : Array.isArray(v) ? v.map(plain)
  : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const service = url.searchParams.get('service');
    const key = url.searchParams.get('key');
    const [valueKey] = l2Keys('hc1', key);
    const res = await fetch(`${service}/${encodeURIComponent(valueKey)}`);
    if (res.status === 404) return Response.json({ kind: 'miss' });
    const bytes = new Uint8Array(await res.arrayBuffer());
    try {
      const e = decodeEntry(valueKey, bytes, Number(res.headers.get('x-pttl')));
      return Response.json({ kind: e.kind, fresh: e.fresh, value: plain(e.value) });
    } catch (err) {
      return Response.json({ error: String(err.message), code: err.code }, { status: 500 });
    }
  },
};
