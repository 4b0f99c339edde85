//! Command dispatch, the keyspace commands and the connection handshake commands.
//! INFO, CONFIG and CONSISTENCY live in `admin.rs`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use healcache::{ConfigProblem, Entry, Error, Ttl, WriteOptions};

use crate::conn::{Client, Flow};
use crate::resp::{parse_int, write_bulk, write_error, write_null, Reply};
use crate::server::Shared;

/// The longest command name echoed in an error.
const ECHOED_NAME: usize = 128;

/// A failed command's reply.
pub type Failed = Reply;

/// The error reply of a core error: its stable code upper-cased, then its message
/// (`-KEYTOOLONG key is 5000 bytes, over the limit of 4096`). Messages never hold a key.
pub fn core_error(e: &Error) -> Reply {
    Reply::Error(format!("{} {e}", e.code().to_ascii_uppercase()))
}

/// `ERR wrong number of arguments for 'get' command`.
pub fn arity(name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// Text for an error message: at most `max` bytes, anything unprintable shown as `?`, so a
/// client's bytes never break the reply line or flood it.
pub fn printable(b: &[u8], max: usize) -> String {
    b.iter().take(max).map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' }).collect()
}

/// A key as the cache takes it (UTF-8 text).
pub fn key(b: &Bytes) -> Result<&str, Failed> {
    std::str::from_utf8(b).map_err(|_| Reply::err("ERR keys must be UTF-8 text"))
}

fn int(b: &Bytes) -> Result<i64, Failed> {
    parse_int(b).ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))
}

/// The command name upper-cased into `buf`; empty when longer than `buf`.
fn upper<'a>(name: &[u8], buf: &'a mut [u8; 16]) -> &'a [u8] {
    if name.len() > buf.len() {
        return &[];
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_uppercase();
    }
    &buf[..name.len()]
}

/// A command the server runs: its name and Redis 7.0's arity (`COMMAND INFO`: `n` words exactly,
/// the name included; `-n` at least `n`), and for a container its subcommands, each with its
/// arity, and what an unknown subcommand's error tells the client to try.
struct Spec {
    name: &'static [u8],
    arity: i32,
    subcommands: &'static [(&'static str, i32)],
    help: &'static str,
}

const fn spec(name: &'static [u8], arity: i32) -> Spec {
    Spec { name, arity, subcommands: &[], help: "" }
}

/// Every command, checked here and nowhere else for its argument count. GET and SET come first:
/// the table is searched in order.
const COMMANDS: &[Spec] = &[
    spec(b"GET", 2),
    spec(b"SET", -3),
    spec(b"PING", -1),
    spec(b"ECHO", 2),
    spec(b"QUIT", -1),
    spec(b"AUTH", -2),
    spec(b"HELLO", -1),
    spec(b"DEL", -2),
    spec(b"EXISTS", -2),
    spec(b"TTL", 2),
    spec(b"PTTL", 2),
    spec(b"DBSIZE", 1),
    spec(b"SELECT", 2),
    // No transactions: MULTI answers +OK, then everything up to EXEC or DISCARD is refused unrun.
    spec(b"MULTI", 1),
    spec(b"EXEC", 1),
    spec(b"DISCARD", 1),
    // SETINFO is Redis 7.2's; redis-py and node-redis send it on connect.
    Spec {
        name: b"CLIENT",
        arity: -2,
        subcommands: &[("setinfo", 4), ("setname", 3), ("getname", 2), ("id", 2), ("help", 2)],
        help: "CLIENT HELP",
    },
    // Every subcommand answers (empty): redis-cli 7 asks for the docs on connect.
    spec(b"COMMAND", -1),
    spec(b"INFO", -1),
    Spec {
        name: b"CONFIG",
        arity: -2,
        subcommands: &[("get", -3), ("set", -4), ("resetstat", 2), ("help", 2)],
        help: "CONFIG HELP",
    },
    Spec {
        name: b"CONSISTENCY",
        arity: -2,
        subcommands: &[("source", 4), ("score", 3), ("scores", 2), ("stats", 2), ("drift", -2)],
        help: "CONSISTENCY SOURCE|SCORE|SCORES|STATS|DRIFT",
    },
];

fn arity_fits(arity: i32, words: usize) -> bool {
    if arity >= 0 {
        words == arity as usize
    } else {
        words >= arity.unsigned_abs() as usize
    }
}

/// The command `name` (upper-cased) names, its argument count and subcommand checked as Redis
/// checks them.
fn lookup(name: &[u8], args: &[Bytes]) -> Result<&'static Spec, Failed> {
    let Some(spec) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(Reply::Error(format!("ERR unknown command '{}'", printable(&args[0], ECHOED_NAME))));
    };
    let lower = || String::from_utf8_lossy(spec.name).to_ascii_lowercase();
    if !arity_fits(spec.arity, args.len()) {
        return Err(arity(&lower()));
    }
    if spec.subcommands.is_empty() {
        return Ok(spec);
    }
    let sub = &args[1];
    let Some((sub_name, sub_arity)) = spec.subcommands.iter().find(|(n, _)| sub.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return Err(Reply::Error(format!(
            "ERR unknown subcommand '{}'. Try {}.",
            printable(sub, ECHOED_NAME),
            spec.help
        )));
    };
    if !arity_fits(*sub_arity, args.len()) {
        return Err(arity(&format!("{}|{sub_name}", lower())));
    }
    Ok(spec)
}

/// The reply to every command after a MULTI, up to EXEC or DISCARD: it does not run, so a
/// client's MULTI ... EXEC applies none of its writes rather than some of them.
const NOT_RUN: &str = "ERR not run: healcache-server has no transactions, so nothing between MULTI and EXEC \
                       runs; EXEC or DISCARD ends it";

/// EXEC's reply after a MULTI: Redis's reply to a transaction whose queued commands had errors.
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// The reply to an EXEC refused before it runs (its argument count, NOAUTH), as Redis words it:
/// the error after `EXECABORT Transaction discarded because of: `, without its `ERR` code.
fn exec_refused(error: &str) -> Reply {
    let error = error.strip_prefix("ERR ").unwrap_or(error);
    Reply::Error(format!("EXECABORT Transaction discarded because of: {error}"))
}

/// Runs one command and writes its reply to `out`.
pub fn execute(shared: &Shared, client: &mut Client, args: &[Bytes], out: &mut BytesMut) -> Flow {
    let mut buf = [0u8; 16];
    let name = upper(&args[0], &mut buf);
    if !client.authenticated && !matches!(name, b"AUTH" | b"HELLO" | b"QUIT" | b"PING") {
        const NOAUTH: &str = "NOAUTH Authentication required.";
        match name {
            b"EXEC" => exec_refused(NOAUTH).encode(client.proto, out),
            _ => write_error(out, NOAUTH),
        }
        return Flow::Continue;
    }
    if client.in_multi && !matches!(name, b"EXEC" | b"DISCARD" | b"MULTI" | b"QUIT") {
        write_error(out, NOT_RUN);
        return Flow::Continue;
    }
    if let Err(e) = lookup(name, args) {
        match (name, e) {
            // Redis discards the transaction when EXEC itself is refused.
            (b"EXEC", Reply::Error(text)) => {
                client.in_multi = false;
                exec_refused(&text).encode(client.proto, out);
            }
            (_, e) => e.encode(client.proto, out),
        }
        return Flow::Continue;
    }
    // The two hot commands write straight into the output.
    match name {
        b"GET" => {
            match key(&args[1]) {
                Ok(k) => match shared.cache.get(k) {
                    Some(v) => write_bulk(out, &v),
                    None => write_null(out, client.proto),
                },
                Err(e) => e.encode(client.proto, out),
            }
            return Flow::Continue;
        }
        b"QUIT" => {
            out.extend_from_slice(b"+OK\r\n");
            return Flow::Close;
        }
        _ => {}
    }
    let reply = match name {
        b"SET" => set(shared, args),
        b"PING" => match args.len() {
            1 => Ok(Reply::Status("PONG")),
            2 => Ok(Reply::Bulk(args[1].clone())),
            _ => Err(arity("ping")),
        },
        b"ECHO" => Ok(Reply::Bulk(args[1].clone())),
        b"AUTH" => auth(shared, client, args),
        b"HELLO" => hello(shared, client, args),
        b"DEL" => count(args, |k| shared.cache.remove(k).is_some()),
        // A read, as Redis's EXISTS is: a hit or a miss in INFO stats (`contains` counts none).
        b"EXISTS" => count(args, |k| shared.cache.get(k).is_some()),
        b"TTL" => ttl(shared, args, 1000),
        b"PTTL" => ttl(shared, args, 1),
        b"DBSIZE" => Ok(Reply::Int(shared.cache.len() as i64)),
        b"SELECT" => match int(&args[1]) {
            Ok(0) => Ok(Reply::Status("OK")),
            Ok(_) => Err(Reply::err("ERR DB index is out of range")),
            Err(e) => Err(e),
        },
        b"MULTI" if client.in_multi => Err(Reply::err("ERR MULTI calls can not be nested")),
        b"MULTI" => {
            client.in_multi = true;
            Ok(Reply::Status("OK"))
        }
        b"EXEC" if std::mem::take(&mut client.in_multi) => Err(Reply::err(EXECABORT)),
        b"EXEC" => Err(Reply::err("ERR EXEC without MULTI")),
        b"DISCARD" if std::mem::take(&mut client.in_multi) => Ok(Reply::Status("OK")),
        b"DISCARD" => Err(Reply::err("ERR DISCARD without MULTI")),
        b"CLIENT" => client_command(client, args),
        b"COMMAND" => Ok(match args.get(1) {
            // redis-cli 7 asks for the docs on connect; none is a valid answer.
            Some(sub) if sub.eq_ignore_ascii_case(b"docs") => Reply::Map(Vec::new()),
            _ => Reply::Array(Vec::new()),
        }),
        b"INFO" => Ok(crate::admin::info(shared, &args[1..])),
        b"CONFIG" => crate::admin::config(shared, args),
        b"CONSISTENCY" => crate::admin::consistency(shared, args),
        // every name of the table is matched above
        _ => Err(Reply::Error(format!("ERR unknown command '{}'", printable(&args[0], ECHOED_NAME)))),
    };
    match reply {
        Ok(r) | Err(r) => r.encode(client.proto, out),
    }
    Flow::Continue
}

/// DEL and EXISTS: how many of the keys `f` answers true for. Every key is checked before `f`
/// runs on any, so a command with a key that is not UTF-8 text answers the error and changes
/// nothing.
fn count(args: &[Bytes], f: impl Fn(&str) -> bool) -> Result<Reply, Failed> {
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::Int(keys.into_iter().map(|k| i64::from(f(k))).sum()))
}

fn ttl(shared: &Shared, args: &[Bytes], unit_ms: u128) -> Result<Reply, Failed> {
    Ok(Reply::Int(match shared.cache.get_entry(key(&args[1])?) {
        None => -2,
        Some(e) => match e.expires_in {
            None => -1,
            // Rounded to the nearest unit, as Redis does.
            Some(d) => ((d.as_millis() + unit_ms / 2) / unit_ms) as i64,
        },
    }))
}

/// The unit of a SET expire option: relative (EX, PX) or a Unix time (EXAT, PXAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

const EXPIRE_UNITS: [(&[u8], ExpireUnit); 4] =
    [(b"ex", ExpireUnit::Ex), (b"px", ExpireUnit::Px), (b"exat", ExpireUnit::ExAt), (b"pxat", ExpireUnit::PxAt)];

/// SET's options, accepted and refused as Redis 7.0 accepts and refuses them: NX and XX exclude
/// each other, the expire options and KEEPTTL exclude each other, and a repeated option counts
/// once (a repeated expire option's last value wins).
#[derive(Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    expire: Option<(ExpireUnit, &'a Bytes)>,
}

fn set_options(args: &[Bytes]) -> Result<SetOptions<'_>, Failed> {
    let mut o = SetOptions::default();
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let is = |s: &[u8]| opt.eq_ignore_ascii_case(s);
        let unit = EXPIRE_UNITS.iter().find(|(n, _)| is(n)).map(|&(_, u)| u);
        if is(b"nx") && !o.xx {
            o.nx = true;
        } else if is(b"xx") && !o.nx {
            o.xx = true;
        } else if is(b"get") {
            o.get = true;
        } else if is(b"keepttl") && o.expire.is_none() {
            o.keep_ttl = true;
        } else if let (Some(unit), Some(n)) = (unit, args.get(i + 1)) {
            if o.keep_ttl || o.expire.is_some_and(|(u, _)| u != unit) {
                return Err(Reply::err("ERR syntax error"));
            }
            o.expire = Some((unit, n));
            i += 1;
        } else {
            return Err(Reply::err("ERR syntax error"));
        }
        i += 1;
    }
    Ok(o)
}

/// What a SET does to the key's expiry.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    Ttl(Ttl),
    /// KEEPTTL: the TTL the key has left.
    Keep,
    /// An EXAT/PXAT time already past: the key ends up absent, as in Redis.
    Past,
}

const INVALID_EXPIRE: &str = "ERR invalid expire time in 'set' command";

/// The expiry an expire option asks for. Values Redis refuses get its error word for word: not
/// positive (i64::MIN too), EX past i64::MAX once in milliseconds, EX or PX past i64::MAX once
/// the current time is added (Redis stores the Unix time in milliseconds). A TTL Redis takes but
/// past the engine's bound gets the same error with the bound, since shortening it silently
/// would keep a key for less time than asked.
fn expiry(unit: ExpireUnit, n: &Bytes) -> Result<Expiry, Failed> {
    let n = int(n)?;
    let seconds = matches!(unit, ExpireUnit::Ex | ExpireUnit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(Reply::err(INVALID_EXPIRE));
    }
    let ms = if seconds { n * 1000 } else { n };
    // Only the wall clock tells how far off a client's Unix time is, and where Redis's sum ends.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let ms = match unit {
        ExpireUnit::Ex | ExpireUnit::Px => match ms.checked_add(now) {
            Some(_) => ms as u64,
            None => return Err(Reply::err(INVALID_EXPIRE)),
        },
        ExpireUnit::ExAt | ExpireUnit::PxAt => match ms.checked_sub(now) {
            Some(left) if left > 0 => left as u64,
            _ => return Ok(Expiry::Past),
        },
    };
    healcache::duration_ms("ttl", ms as f64).map_err(|e| match e {
        Error::InvalidConfig { problem: ConfigProblem::TooLong { max }, .. } => {
            let years = max / (365.0 * 24.0 * 3600.0 * 1000.0);
            Reply::Error(format!("{INVALID_EXPIRE}: at most {years} years (EX {}, PX {max})", max / 1000.0))
        }
        e => core_error(&e),
    })?;
    Ok(Expiry::Ttl(Ttl::For(Duration::from_millis(ms))))
}

/// The TTL a KEEPTTL write gives: what `old` has left, none if it has no expiry, the cache's
/// default for a new key (as a SET without options).
fn kept_ttl(old: Option<&Entry<Bytes>>) -> Ttl {
    match old {
        None => Ttl::Default,
        Some(e) => e.expires_in.map_or(Ttl::Never, |d| Ttl::For(d.max(Duration::from_nanos(1)))),
    }
}

fn set(shared: &Shared, args: &[Bytes]) -> Result<Reply, Failed> {
    let o = set_options(args)?;
    let expiry = match (o.expire, o.keep_ttl) {
        (Some((unit, n)), _) => expiry(unit, n)?,
        (None, true) => Expiry::Keep,
        (None, false) => Expiry::Ttl(Ttl::Default),
    };
    let k = key(&args[1])?;
    let cache = &shared.cache;
    // Checked before the key's presence decides anything, so NX, XX and GET refuse it as a plain
    // SET does rather than answer nil for a key that could never be stored.
    let max_key_len = cache.config().max_key_len as usize;
    if k.len() > max_key_len {
        return Err(core_error(&Error::KeyTooLong { len: k.len(), max: max_key_len }));
    }
    // A copy: the argument is a slice of the connection's read buffer, which a stored slice
    // would keep alive whole (with whatever else arrived in it).
    let value = Bytes::copy_from_slice(&args[2]);
    if let (Expiry::Ttl(ttl), false, false) = (expiry, o.xx, o.get) {
        // One write; for NX the engine's version check decides.
        let if_version = o.nx.then_some(0);
        return match cache.write(k, value, WriteOptions { ttl, if_version }) {
            Ok(_) => Ok(Reply::Status("OK")),
            Err(Error::VersionMismatch { .. }) => Ok(Reply::Null),
            Err(e) => Err(core_error(&e)),
        };
    }
    // The live entry decides (XX, GET, KEEPTTL): write over the version seen; another writer in
    // between means look again.
    for _ in 0..16 {
        // GET reads the key as a GET does (a hit or a miss); the others only look.
        let old = if o.get { cache.get_entry(k) } else { cache.peek_entry(k) };
        let seen = old.as_ref().map_or(0, |e| e.version);
        let answer = |written: bool| match (&old, o.get) {
            (Some(e), true) => Reply::Bulk(e.value.clone()),
            (None, true) => Reply::Null,
            (_, false) if written => Reply::Status("OK"),
            (_, false) => Reply::Null,
        };
        if (o.nx && old.is_some()) || (o.xx && old.is_none()) {
            return Ok(answer(false));
        }
        let done = match expiry {
            Expiry::Past => cache.remove_if_version(k, seen).map(drop),
            Expiry::Keep => cache
                .write(k, value.clone(), WriteOptions { ttl: kept_ttl(old.as_ref()), if_version: Some(seen) })
                .map(drop),
            Expiry::Ttl(ttl) => cache.write(k, value.clone(), WriteOptions { ttl, if_version: Some(seen) }).map(drop),
        };
        match done {
            Ok(()) => return Ok(answer(true)),
            Err(Error::VersionMismatch { .. }) => continue,
            Err(e) => return Err(core_error(&e)),
        }
    }
    Err(Reply::err("ERR the key kept changing; try again"))
}

/// Checks `user`/`pass`. Only the `default` user exists; without a password it takes any
/// password, as Redis's `nopass` default user does.
fn check_password(shared: &Shared, client: &mut Client, user: &[u8], pass: &[u8]) -> Result<(), Failed> {
    let user_ok = user == b"default";
    let pass_ok = match &shared.settings.server.requirepass {
        // Both checks always run, so the time taken does not tell which one failed.
        Some(secret) => secret.matches(pass),
        None => true,
    };
    if pass_ok & user_ok {
        client.authenticated = true;
        Ok(())
    } else {
        shared.counters.auth_failures.fetch_add(1, Relaxed);
        Err(Reply::err("WRONGPASS invalid username-password pair or user is disabled."))
    }
}

fn auth(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Result<Reply, Failed> {
    match args.len() {
        2 if shared.settings.server.requirepass.is_none() => {
            return Err(Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ))
        }
        2 => check_password(shared, client, b"default", &args[1])?,
        3 => check_password(shared, client, &args[1], &args[2])?,
        _ => return Err(Reply::err("ERR syntax error")),
    }
    Ok(Reply::Status("OK"))
}

fn hello(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Result<Reply, Failed> {
    let mut proto = client.proto;
    if let Some(v) = args.get(1) {
        proto = match parse_int(v) {
            Some(2) => 2,
            Some(3) => 3,
            Some(_) => return Err(Reply::err("NOPROTO unsupported protocol version")),
            None => return Err(Reply::err("ERR Protocol version is not an integer or out of range")),
        };
    }
    let (mut i, mut name) = (2, None);
    while i < args.len() {
        let opt = &args[i];
        if opt.eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            check_password(shared, client, &args[i + 1], &args[i + 2])?;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && i + 1 < args.len() {
            name = Some(valid_name(&args[i + 1])?);
            i += 2;
        } else {
            return Err(Reply::Error(format!("ERR Syntax error in HELLO option '{}'", printable(opt, ECHOED_NAME))));
        }
    }
    if !client.authenticated {
        return Err(Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH \
             <user> <pass> option can be used to authenticate the client and select the RESP protocol version at \
             the same time",
        ));
    }
    client.proto = proto;
    if let Some(name) = name {
        // an empty name clears it, as CLIENT SETNAME "" does
        client.name = Some(name).filter(|n| !n.is_empty());
    }
    Ok(Reply::Map(vec![
        (Reply::text("server"), Reply::text("healcache")),
        // The Redis protocol level answered, for clients that gate features on it.
        (Reply::text("version"), Reply::text("7.0.0")),
        (Reply::text("healcache_version"), Reply::text(env!("CARGO_PKG_VERSION"))),
        (Reply::text("proto"), Reply::Int(i64::from(proto))),
        (Reply::text("id"), Reply::Int(client.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ]))
}

fn valid_name(n: &Bytes) -> Result<Bytes, Failed> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(n.clone())
}

/// A `... HELP` reply as Redis gives it: one status line each.
pub(crate) fn help(lines: &'static [&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|&l| Reply::Status(l)).collect())
}

/// `CLIENT HELP`: the subcommands served, in Redis's words where they do what Redis's do.
const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "SETINFO <option> <value>",
    "    Accepted and ignored (Redis 7.2's; clients send their library's name and version with it).",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Prints this help.",
];

fn client_command(client: &mut Client, args: &[Bytes]) -> Result<Reply, Failed> {
    // `lookup` checked the subcommand and its argument count.
    let is = |s: &[u8]| args[1].eq_ignore_ascii_case(s);
    if is(b"setinfo") {
        // redis-py and node-redis send their library name and version on connect.
        Ok(Reply::Status("OK"))
    } else if is(b"setname") {
        client.name = Some(valid_name(&args[2])?).filter(|n| !n.is_empty());
        Ok(Reply::Status("OK"))
    } else if is(b"getname") {
        Ok(client.name.clone().map_or(Reply::Null, Reply::Bulk))
    } else if is(b"id") {
        Ok(Reply::Int(client.id as i64))
    } else if is(b"help") {
        Ok(help(CLIENT_HELP))
    } else {
        Err(Reply::Error(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", printable(&args[1], ECHOED_NAME))))
    }
}
