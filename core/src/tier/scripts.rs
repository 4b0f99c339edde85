//! The Lua scripts of the shared tier, as text: part of the wire protocol, like the envelope.
//!
//! Every script names all its keys in `KEYS[]`, and they share one hash tag (see
//! [`crate::keys::l2_keys`]), so each runs on one Redis Cluster slot. They use only the Redis 7.0
//! command set (Valkey runs them too). Tokens are compared as numbers below 2^53 (exact in Lua's
//! doubles) or byte by byte with `string.byte`, never with string `<`, which follows the server's
//! locale (`strcoll`).
//!
//! | script | KEYS | ARGV | returns |
//! |---|---|---|---|
//! | [`READ`] | value | max bytes | `{envelope or nil, PTTL}`; `{length, PTTL}` past max bytes |
//! | [`REVALIDATE`] | value | | `{16 token bytes or "", PTTL}` |
//! | [`WRITE`] | value, fence, lock | epoch, counter (`""` = allocate), envelope, px (`""`/`0` = none), lockval (`""` = none) | `{1, epoch, counter}`, `{-1}` epoch changed, `{-2}` newer stored |
//! | [`WRITE_SEEN`] | value, fence | condition (`""`, `absent` or 16 token bytes), head, tail (see [`split_envelope`]), px (`0` = none) | counter (written under the epoch in head), `{1, epoch, counter}` (under another), `{0}` refused |
//! | [`ACQUIRE`] | lock, fence, value | owner, lease_ms | `{1, epoch, counter, lockval, header (56 bytes or ""), PTTL}` or `{0, lock PTTL}` |
//! | [`RENEW`] | lock | lockval, lease_ms | 1 renewed, 0 lost |
//! | [`RELEASE`] | lock | lockval | 1 released, 0 not ours |
//! | [`LEASE`] | lease | value, lease_ms | `{1}` won, `{0, PTTL}` held |
//! | [`PUT_RECORD`] | lease, record | lease value, ttl_ms, field, value, ... | 1 written, 0 lease lost |
//! | [`TAG_READ`] | tag | | `{version, how}`: µs since an invalidation set it, `-2` set by this read, `-3` by an earlier read, `-1` not known |
//! | [`TAG_BUMP`] | tag | | the new version |
//!
//! The fence hash (`<prefix>:{b}:f`, one per slot, so at most 16,384) holds one field: its name is
//! the epoch (8 big-endian bytes), its value the counter, so a writer that names the epoch gets a
//! fresh token with one `HINCRBY`. The epoch is the server's `TIME` in microseconds whenever the hash is missing
//! (first use, a restart without persistence, eviction, `FLUSHALL`): only equality of epochs is
//! tested, so a token from before the loss is fenced out without comparing clocks. Microseconds,
//! not milliseconds, so that two losses within one millisecond still give two epochs; 2^53 µs
//! lasts until the year 2255.

// Lua helpers, each a text spliced with `concat!` into the scripts that use it: a script
// defines its helpers on every call, so each takes only those it needs.

/// `num(s)`: an integer below 2^53 from decimal text, else nil.
macro_rules! lua_num {
    () => {
        r#"
local TWO53 = 9007199254740992
-- an integer 0 <= n < 2^53 from decimal text, else nil
local function num(s)
  local n = tonumber(s)
  if n and n >= 0 and n < TWO53 and n == math.floor(n) then return n end
  return nil
end
"#
    };
}

/// `be8(n)`: n < 2^53 as 8 big-endian bytes.
macro_rules! lua_be8 {
    () => {
        r#"
-- n (< 2^53) as 8 big-endian bytes, as two 32-bit halves (% and floor are exact on such
-- doubles); struct.pack, not a table of bytes: the table made every write ~10 us slower
local function be8(n)
  return struct.pack('>I4I4', math.floor(n / 4294967296), n % 4294967296)
end
"#
    };
}

/// `n8(b)`: the number in 8 big-endian bytes.
macro_rules! lua_n8 {
    () => {
        r#"
-- the number in 8 big-endian bytes (an epoch: below 2^53)
local function n8(b)
  local hi, lo = struct.unpack('>I4I4', b)
  return hi * 4294967296 + lo
end
"#
    };
}

/// `ge(a, b)`: a >= b for byte strings of equal length.
macro_rules! lua_ge {
    () => {
        r#"
-- a >= b for byte strings of equal length read as big-endian numbers
local function ge(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end
"#
    };
}

/// A fresh token from the fence record `f`, as statements (no function: a script defines its
/// functions again on every call, which costs a write more than the call saves). In: `f`, and
/// `hint`, the epoch the writer saw last (8 bytes; zeros: none). Out: the locals `eb` (the
/// epoch's 8 bytes) and `c` (the next counter), which the script declares.
macro_rules! lua_bump {
    () => {
        r#"
-- The record has one field, named by the epoch, holding the counter: with the right hint a
-- token is one HINCRBY. A wrong hint, none, or a lost record (first use, a restart without
-- persistence, eviction, FLUSHALL) takes the slow way; a lost record, or one not of this layout
-- (another type, a counter that is no integer or is past 2^53, an epoch past 2^53: bytes no
-- cache wrote), gets a new epoch from the server clock (microseconds). pcall: such a record
-- must not make every write to the slot fail; any other error (out of memory, say) fails the
-- write as it would have.
eb, c = hint, 0
if #hint == 8 and hint ~= '\0\0\0\0\0\0\0\0' then
  c = redis.pcall('HINCRBY', f, hint, 1)
  if type(c) == 'table' then
    if not (string.find(c.err, '^WRONGTYPE') or string.find(c.err, 'not an integer')
        or string.find(c.err, 'overflow')) then
      return redis.error_reply(c.err)
    end
    c = 0
  end
  -- 1: the field was made just now, so the hint is not the epoch
  if c == 1 then redis.call('HDEL', f, hint) end
end
if c < 2 or c >= 9007199254740992 then
  local ks = redis.pcall('HKEYS', f)
  c = nil
  -- an epoch below 2^53: its high 32 bits below 2^21
  if type(ks) == 'table' and #ks == 1 and #ks[1] == 8 and struct.unpack('>I4', ks[1]) < 2097152 then
    eb = ks[1]
    c = redis.pcall('HINCRBY', f, eb, 1)
    if type(c) == 'table' then
      if not (string.find(c.err, 'not an integer') or string.find(c.err, 'overflow')) then
        return redis.error_reply(c.err)
      end
      c = nil
    elseif c >= 9007199254740992 then
      c = nil
    end
  end
  if not c then
    -- lost, or not of this layout: a new epoch fences out every token of the old
    redis.call('DEL', f)
    local t = redis.call('TIME')
    local n = tonumber(t[1]) * 1000000 + tonumber(t[2])
    eb = struct.pack('>I4I4', math.floor(n / 4294967296), n % 4294967296)
    c = 1
    redis.call('HSET', f, eb, 1)
  end
end
"#
    };
}

/// `{GET v, PTTL v}`: the envelope (nil when absent) and its remaining time to live in ms
/// (-2 absent, -1 no expiry). Fresh for `PTTL - grace_ms` more. A value longer than `ARGV[1]`
/// bytes (see [`crate::codec::max_envelope_bytes`]) answers its length instead, so bytes the
/// reader would refuse never cross the network.
pub const READ: &str = r#"
local n = redis.pcall('STRLEN', KEYS[1])
local v
-- a key of another type holds no envelope: '' reads as a codec error, not a failed command
if type(n) == 'table' then v = ''
elseif n > tonumber(ARGV[1]) then v = n
else v = redis.call('GET', KEYS[1]) end
return {v, redis.call('PTTL', KEYS[1])}
"#;

/// `{GETRANGE v 8 23, PTTL v}`: the stored token's 16 bytes ("" when absent) without the
/// payload, so a suspect L1 copy whose token matches is trusted again for 16 bytes of traffic.
pub const REVALIDATE: &str = r#"
local t = redis.pcall('GETRANGE', KEYS[1], 8, 23)
if type(t) == 'table' then t = '' end
return {t, redis.call('PTTL', KEYS[1])}
"#;

/// The fenced compare-and-set of every L2 write.
///
/// With a counter (a load under a token from ACQUIRE): refused with `{-1}` when the slot's epoch
/// is not the token's (fence state was lost or renewed since), and with `{-2}` when the stored
/// envelope carries the same epoch and a counter at least as high (a newer write, a tombstone
/// included, landed since the token was taken). With counter `""` (a plain set, write-through or a
/// delete's tombstone): a fresh token is allocated, so the write beats every token handed out
/// before it. The envelope's bytes 8-23 are replaced by the token written; the SET uses `PX px`
/// (none when `px` is `""` or `0`); the lock is released when `lockval` still holds it.
pub const WRITE: &str = concat!(
    lua_num!(),
    lua_be8!(),
    lua_n8!(),
    lua_ge!(),
    r#"
local v, f, l = KEYS[1], KEYS[2], KEYS[3]
local env = ARGV[3]
if #env < 56 or string.sub(env, 1, 2) ~= 'hc' then
  return redis.error_reply('ERR healcache: the value is not an envelope')
end
local e, c, eb
if ARGV[2] == '' then
  local hint = string.sub(env, 9, 16)
"#,
    lua_bump!(),
    r#"
  e = n8(eb)
else
  e, c = num(ARGV[1]), num(ARGV[2])
  if not e or not c then
    return redis.error_reply('ERR healcache: a token is not an integer below 2^53')
  end
  -- a record of another type holds no epoch: fenced out, as when it was lost
  if redis.pcall('HEXISTS', f, be8(e)) ~= 1 then return {-1} end
  local h = redis.pcall('GETRANGE', v, 0, 23)
  if type(h) == 'string' and #h == 24 and string.sub(h, 1, 2) == 'hc' and string.sub(h, 9, 16) == be8(e)
      and ge(string.sub(h, 17, 24), be8(c)) then
    return {-2}
  end
end
env = string.sub(env, 1, 8) .. be8(e) .. be8(c) .. string.sub(env, 25)
local px = ARGV[4]
if px == '' or px == '0' then
  redis.call('SET', v, env)
else
  redis.call('SET', v, env, 'PX', px)
end
if ARGV[5] ~= '' and redis.call('GET', l) == ARGV[5] then redis.call('DEL', l) end
return {1, e, c}
"#
);

/// Try-lock for a rebuild: when the lock is free, allocates a token, sets the lock to
/// `owner:epoch:counter` for `lease_ms`, and returns the stored envelope's header so the winner
/// can skip a reload that another node just finished.
pub const ACQUIRE: &str = concat!(
    lua_n8!(),
    r#"
local l, f, v = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', l) == 1 then return {0, redis.call('PTTL', l)} end
local eb, c, hint = nil, nil, ''
"#,
    lua_bump!(),
    r#"
local e = n8(eb)
local lockval = ARGV[1] .. ':' .. string.format('%.0f', e) .. ':' .. string.format('%.0f', c)
redis.call('SET', l, lockval, 'PX', ARGV[2])
return {1, e, c, lockval, redis.call('GETRANGE', v, 0, 55), redis.call('PTTL', v)}
"#
);

/// Extends the lease when the lock still holds `lockval`.
pub const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Deletes the lock when it still holds `lockval` (compare-and-delete).
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Try-lock of a fleet verifier's lease: `SET NX PX`, and the holder's remaining time when it
/// is taken (so the others try again just after it would expire, not at a fixed poll).
pub const LEASE: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('PTTL', KEYS[1])}
"#;

/// Writes fields of a record hash (a fleet verifier's scores) only while the writer still holds
/// the lease: a verifier that stalled past its lease cannot overwrite its successor's scores.
/// The lease and the record share a hash tag (see [`crate::keys::verifier_keys`]).
pub const PUT_RECORD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 3, #ARGV - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#;

/// The tag's stored text `v` (false when absent) and the server's clock `now` in microseconds,
/// as statements: the start of both tag scripts.
macro_rules! lua_tag_now {
    () => {
        r#"
local v = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"#
    };
}

/// A tag's current version and how it was set. Versions come from the server's clock in
/// microseconds, so a key lost in Redis (evicted, deleted, a restart without persistence) never
/// comes back at a version a value recorded before. An absent key (the tag new, or its key
/// lost) is set by the read to an even version; an invalidation ([`TAG_BUMP`]) sets an odd
/// one, so a reader can tell whether an invalidation set the version, and how long ago by the
/// server's clock.
///
/// KEYS: the tag's key. Returns `{version as text, how}`: how `-2` set by this read, `-3` set
/// by an earlier read (no invalidation since), `>= 0` set by an invalidation that many µs ago,
/// `-1` not known (a version not made from the clock, or ahead of it).
pub const TAG_READ: &str = concat!(
    lua_num!(),
    lua_tag_now!(),
    r#"
if not v then
  local made = string.format('%.0f', now - now % 2)
  redis.call('SET', KEYS[1], made)
  return {made, -2}
end
local n = num(v)
if n and n >= 1000000000000000 then
  if n % 2 == 0 then return {v, -3} end
  if n <= now then return {v, now - n} end
end
return {v, -1}
"#
);

/// A tag's invalidation: its version moves to the server's clock in microseconds, or past the
/// old version when that is not lower (two bumps within a microsecond), made odd (see
/// [`TAG_READ`]), so the new version is one the key never held, even after the key was lost and
/// made again. Text that is no version, or a number past 2^52 (see
/// [`super::TAG_VERSION_END`]), is replaced. A TTL on the key is kept, as `INCR` keeps it.
///
/// KEYS: the tag's key. Returns the new version.
pub const TAG_BUMP: &str = concat!(
    lua_num!(),
    lua_tag_now!(),
    r#"
local n = now
local old = v and num(v)
-- past 2^52 (the year 2112) no cache wrote it: the clock replaces it
if old and old >= 4503599627370496 then old = nil end
if old and old >= n then n = old + 1 end
if n % 2 == 0 then n = n + 1 end
if n >= TWO53 then return redis.error_reply('ERR the tag version is past 2^53') end
redis.call('SET', KEYS[1], string.format('%.0f', n), 'KEEPTTL')
return n
"#
);

/// Result codes of [`WRITE`] (first element of its reply).
pub mod write_result {
    /// Written; the reply goes on with the epoch and counter of the token written.
    pub const WRITTEN: i64 = 1;
    /// Fenced out: the slot's epoch is not the token's.
    pub const EPOCH_CHANGED: i64 = -1;
    /// Fenced out: an envelope with the same epoch and a counter at least as high is stored.
    pub const NEWER_STORED: i64 = -2;
}

/// The fenced write of a process that holds no lock: it lands only if L2 still holds what the
/// writer read before its load, so a slow loader never overwrites a newer value and a delete's
/// tombstone (written unconditionally, with a fresh token) makes a late rebuild lose.
///
/// The envelope comes in two parts (see [`split_envelope`]): its first 16 bytes, whose bytes
/// 8-15 name the epoch the writer saw last for the slot (zeros: none), and its bytes from 24
/// on; the token goes between. With the right epoch the fence record costs one `HINCRBY`, and
/// the envelope is joined as it came, with no copy of it made to splice the token in.
///
/// KEYS: value, fence. ARGV: the condition (`""`: none; `absent`: only if no value is stored;
/// 16 token bytes: only if the stored token is that one, or the key expired with no newer
/// write), head, tail, px (`0` = no expiry). Returns the counter written (an integer >= 1)
/// when written under the epoch in head, `{1, epoch, counter}` when written under another (the
/// slot's epoch is not the one named), `{0}` refused.
pub const WRITE_SEEN: &str = concat!(
    r#"
local v, f = KEYS[1], KEYS[2]
local cond, head, tail = ARGV[1], ARGV[2], ARGV[3]
if #head ~= 16 or #tail < 32 or string.sub(head, 1, 2) ~= 'hc' then
  return redis.error_reply('ERR healcache: the value is not an envelope')
end
if cond == 'absent' then
  if redis.call('EXISTS', v) == 1 then return {0} end
elseif cond ~= '' then
  local cur = redis.pcall('GETRANGE', v, 8, 23)
  -- a key of another type holds no token: as absent, and the SET below replaces it
  if type(cur) == 'string' and cur ~= '' and cur ~= cond then return {0} end
end
local hint, eb, c = string.sub(head, 9, 16), nil, nil
"#,
    lua_bump!(),
    r#"
if eb ~= hint then head = string.sub(head, 1, 8) .. eb end
local env = head .. struct.pack('>I4I4', math.floor(c / 4294967296), c % 4294967296) .. tail
if ARGV[4] == '0' then
  redis.call('SET', v, env)
else
  redis.call('SET', v, env, 'PX', ARGV[4])
end
if eb == hint then return c end
local hi, lo = struct.unpack('>I4I4', eb)
return {1, hi * 4294967296 + lo, c}
"#
);

/// An envelope as [`WRITE_SEEN`] takes it: bytes 0-15 (the header's start and the epoch the
/// writer names) and bytes 24 on (after the token's counter). Shorter than 24 bytes, it is not an
/// envelope: the whole of it comes first and the script refuses it.
pub fn split_envelope(env: &[u8]) -> (&[u8], &[u8]) {
    if env.len() < 24 {
        return (env, &[]);
    }
    (&env[..16], &env[24..])
}

/// The token a [`WRITE_SEEN`] reply of a bare counter names: the epoch the envelope named (its
/// bytes 8-15) and that counter.
pub fn seen_token(env: &[u8], counter: i64) -> Option<crate::codec::Token> {
    let epoch = u64::from_be_bytes(env.get(8..16)?.try_into().ok()?);
    (counter >= 1).then_some(crate::codec::Token { epoch, counter: counter as u64 })
}
