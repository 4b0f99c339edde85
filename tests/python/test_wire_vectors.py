"""An independent reader of the shared tier's wire format (docs/wire-format.md).

It uses only `msgpack`, `lz4.block`, `xxhash` and the standard library, never healcache's own
code, and decodes every valid vector in tests/vectors/envelope.json and refuses every malformed
one; it also rebuilds every key of tests/vectors/keys.json. If this reader and the Rust codec ever
disagree, one of them does not follow the document.
"""

import binascii
import json
import pathlib
import struct
import urllib.parse

import lz4.block
import msgpack
import pytest
import xxhash

VECTORS = pathlib.Path(__file__).resolve().parents[1] / "vectors"
ENVELOPES = json.loads((VECTORS / "envelope.json").read_text())
KEYS = json.loads((VECTORS / "keys.json").read_text())
MAX_ENTRY = ENVELOPES["limits"]["max_entry_bytes"]
HEADER = struct.Struct(">2sBBB3sQQQQIIQ")  # 56 bytes, big-endian
assert HEADER.size == 56


class Refused(Exception):
    pass


def read_envelope(key: bytes, b: bytes):
    """Header fields, tags and the uncompressed payload; Refused for anything malformed."""
    if len(b) < 56:
        raise Refused("Short")
    magic, version, flags, codec, reserved, epoch, counter, fresh, grace, load_us, length, checksum = HEADER.unpack_from(b)
    if magic != b"hc":
        raise Refused("BadMagic")
    if version != 1:
        raise Refused("Version")
    kind = {0: "value", 2: "not_found", 4: "tombstone"}.get(flags & 0b110)
    if kind is None or flags & ~0b1111 or (kind != "value" and flags & 1):
        raise Refused("Flags")
    if 4 <= codec <= 127:
        raise Refused("Codec")
    if reserved != b"\0\0\0":
        raise Refused("Reserved")
    if kind != "value" and length:
        raise Refused("Unexpected")
    if length > MAX_ENTRY:
        raise Refused("TooLarge")
    body, tags, at = b[56:], [], 0
    if flags & 0b1000:
        if not body or body[0] > 16:
            raise Refused("Tags")
        at = 1
        for _ in range(body[0]):
            if at + 2 > len(body):
                raise Refused("Tags")
            (n,) = struct.unpack_from(">H", body, at)
            if at + 2 + n + 8 > len(body):
                raise Refused("Tags")
            name = body[at + 2 : at + 2 + n].decode()
            (tag_version,) = struct.unpack_from(">Q", body, at + 2 + n)
            tags.append({"name": name, "version": tag_version})
            at += 2 + n + 8
    stored = body[at:]
    if flags & 1:
        if length > 1000 * len(stored):
            raise Refused("Ratio")
    elif length != len(stored):
        raise Refused("Length")
    if xxhash.xxh3_64(key + body).intdigest() != checksum:
        raise Refused("Checksum")
    if flags & 1:
        try:
            payload = lz4.block.decompress(stored, uncompressed_size=length)
        except lz4.block.LZ4BlockError:
            raise Refused("Decompress")
        if len(payload) != length:
            raise Refused("Decompress")
    else:
        payload = stored
    fields = dict(kind=kind, codec=codec, epoch=epoch, counter=counter, fresh_ms=fresh, grace_ms=grace,
                  load_us=load_us, payload_len=length, compressed=bool(flags & 1), tags=tags)
    return fields, payload


def depth(v) -> int:
    if isinstance(v, (list, tuple)):
        return 1 + max(map(depth, v), default=0)
    if isinstance(v, dict):
        return 1 + max(map(depth, v.values()), default=0)
    return 0


def typed(v):
    """The vectors' JSON form of a value: bytes as {"$bytes": hex}."""
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, (list, tuple)):
        return [typed(x) for x in v]
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    return v


def read_value(codec: int, payload: bytes):
    try:
        if codec == 3:
            v = msgpack.unpackb(payload, raw=False, strict_map_key=True)
            if any(not isinstance(k, str) for k in _keys(v)):
                raise Refused("NotEncodable")
            if depth(v) > 64:
                raise Refused("Depth")
            return v
        if codec == 2:
            return json.loads(payload.decode())
        if codec == 1:
            return payload.decode()
        return payload
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, UnicodeDecodeError) as e:
        raise Refused(type(e).__name__)


def _keys(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _keys(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _keys(x)


@pytest.mark.parametrize("vec", ENVELOPES["valid"], ids=lambda v: v["name"])
def test_valid_envelopes_decode(vec):
    fields, payload = read_envelope(vec["key"].encode(), bytes.fromhex(vec["hex"]))
    for name, got in fields.items():
        assert got == vec[name], name
    if fields["kind"] == "value":
        assert typed(read_value(fields["codec"], payload)) == vec["value"]
    else:
        assert payload == b"" and vec["value"] is None


@pytest.mark.parametrize("vec", ENVELOPES["malformed"], ids=lambda v: v["name"])
def test_malformed_envelopes_are_refused(vec):
    with pytest.raises(Refused) as refused:
        fields, payload = read_envelope(vec["key"].encode(), bytes.fromhex(vec["hex"]))
        read_value(fields["codec"], payload)
    if vec["stage"] == "envelope":
        # the envelope checks are this reader's own transcription of the document: same names
        assert refused.value.args[0] == vec["error"]


def test_the_vectors_cover_the_cases_the_format_names():
    names = {v["name"] for v in ENVELOPES["valid"]}
    assert {"msgpack-map", "raw-bytes", "utf8-text", "json-document", "msgpack-integers", "negative-entry",
            "tombstone", "compressed-msgpack", "never-expiring", "tagged"} <= names
    assert sum(v["compressed"] for v in ENVELOPES["valid"]) >= 2
    errors = {v["error"] for v in ENVELOPES["malformed"]}
    assert {"Short", "BadMagic", "Version", "Flags", "TooLarge", "Ratio", "Checksum", "Decompress", "Payload"} <= errors


def key_part(v) -> str:
    return str(v) if isinstance(v, int) else urllib.parse.quote(v, safe="")


def l2(prefix: str, key: str) -> tuple:
    b = "{%04x}" % (binascii.crc_hqx(key.encode(), 0) % 16384)  # CRC16-XMODEM, the Redis Cluster slot
    return f"{prefix}:{b}:v:{key}", f"{prefix}:{b}:l:{key}", f"{prefix}:{b}:f"


@pytest.mark.parametrize("space", KEYS["spaces"], ids=lambda s: s["namespace"])
def test_keyspace_keys_rebuild_independently(space):
    head = f"{key_part(space['namespace'])}:{key_part(space['entity'])}:v{space['version']}:"
    for case in space["cases"]:
        key = head + ":".join(f"{key_part(d)}={key_part(v)}" for d, v in zip(space["dims"], case["values"]))
        assert key == case["key"]
        assert case["slot"] == binascii.crc_hqx(key.encode(), 0) % 16384
        assert l2("hc1", key) == (case["l2_value"], case["l2_lock"], case["l2_fence"])


@pytest.mark.parametrize("plain", KEYS["plain"], ids=lambda p: repr(p["cache_key"]))
def test_plain_keys_map_to_one_slot(plain):
    assert l2(plain["prefix"], plain["cache_key"]) == (plain["value"], plain["lock"], plain["fence"])
    assert plain["slot"] == binascii.crc_hqx(plain["cache_key"].encode(), 0) % 16384


@pytest.mark.parametrize("t", KEYS["tags"], ids=lambda t: t["tag"])
def test_tag_version_keys(t):
    name = f"{key_part(t['namespace'])}:{key_part(t['tag'])}"
    b = "{%04x}" % (binascii.crc_hqx(name.encode(), 0) % 16384)
    assert t["key"] == f"{t['prefix']}:{b}:t:{name}"


@pytest.mark.parametrize("bus", KEYS["bus"], ids=lambda b: b["namespace"])
def test_bus_channels(bus):
    assert bus["channel"] == f"{bus['prefix']}:{{{key_part(bus['namespace'])}}}:bus"
