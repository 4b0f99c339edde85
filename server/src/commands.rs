//! Command dispatch, the keyspace commands and the connection handshake commands.
//! INFO, CONFIG and CONSISTENCY live in `admin.rs`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use healcache::{Error, Ttl, WriteOptions};

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

/// Runs one command and writes its reply to `out`.
pub fn execute(shared: &Shared, client: &mut Client, args: &[Bytes], out: &mut BytesMut) -> Flow {
    let mut buf = [0u8; 16];
    let name = upper(&args[0], &mut buf);
    if !client.authenticated && !matches!(name, b"AUTH" | b"HELLO" | b"QUIT" | b"PING") {
        write_error(out, "NOAUTH Authentication required.");
        return Flow::Continue;
    }
    // The two hot commands write straight into the output.
    match name {
        b"GET" => {
            if args.len() != 2 {
                arity("get").encode(client.proto, out);
            } else {
                match key(&args[1]) {
                    Ok(k) => match shared.cache.get(k) {
                        Some(v) => write_bulk(out, &v),
                        None => write_null(out, client.proto),
                    },
                    Err(e) => e.encode(client.proto, out),
                }
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
        b"ECHO" if args.len() == 2 => Ok(Reply::Bulk(args[1].clone())),
        b"AUTH" => auth(shared, client, args),
        b"HELLO" => hello(shared, client, args),
        b"DEL" => count(args, "del", |k| shared.cache.remove(k).is_some()),
        b"EXISTS" => count(args, "exists", |k| shared.cache.contains(k)),
        b"TTL" => ttl(shared, args, "ttl", 1000),
        b"PTTL" => ttl(shared, args, "pttl", 1),
        b"DBSIZE" => Ok(Reply::Int(shared.cache.len() as i64)),
        b"SELECT" if args.len() == 2 => match int(&args[1]) {
            Ok(0) => Ok(Reply::Status("OK")),
            Ok(_) => Err(Reply::err("ERR DB index is out of range")),
            Err(e) => Err(e),
        },
        b"CLIENT" => client_command(client, args),
        b"COMMAND" => Ok(match args.get(1) {
            // redis-cli 7 asks for the docs on connect; none is a valid answer.
            Some(sub) if sub.eq_ignore_ascii_case(b"docs") => Reply::Map(Vec::new()),
            _ => Reply::Array(Vec::new()),
        }),
        b"INFO" => Ok(crate::admin::info(shared, &args[1..])),
        b"CONFIG" => crate::admin::config(shared, args),
        b"CONSISTENCY" => crate::admin::consistency(shared, args),
        b"ECHO" | b"SELECT" => Err(arity(&String::from_utf8_lossy(name).to_ascii_lowercase())),
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
fn count(args: &[Bytes], name: &str, f: impl Fn(&str) -> bool) -> Result<Reply, Failed> {
    if args.len() < 2 {
        return Err(arity(name));
    }
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::Int(keys.into_iter().map(|k| i64::from(f(k))).sum()))
}

fn ttl(shared: &Shared, args: &[Bytes], name: &str, unit_ms: u128) -> Result<Reply, Failed> {
    if args.len() != 2 {
        return Err(arity(name));
    }
    Ok(Reply::Int(match shared.cache.get_entry(key(&args[1])?) {
        None => -2,
        Some(e) => match e.expires_in {
            None => -1,
            // Rounded to the nearest unit, as Redis does.
            Some(d) => ((d.as_millis() + unit_ms / 2) / unit_ms) as i64,
        },
    }))
}

fn set(shared: &Shared, args: &[Bytes]) -> Result<Reply, Failed> {
    if args.len() < 3 {
        return Err(arity("set"));
    }
    let k = key(&args[1])?;
    let (mut ttl, mut nx, mut xx) = (Ttl::Default, false, false);
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if opt.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if (opt.eq_ignore_ascii_case(b"ex") || opt.eq_ignore_ascii_case(b"px")) && ttl == Ttl::Default {
            let n = args.get(i + 1).ok_or_else(|| Reply::err("ERR syntax error"))?;
            let n = int(n)?;
            if n <= 0 {
                return Err(Reply::err("ERR invalid expire time in 'set' command"));
            }
            let ms = if opt.eq_ignore_ascii_case(b"ex") { (n as u64).saturating_mul(1000) } else { n as u64 };
            ttl = Ttl::For(Duration::from_millis(ms));
            i += 1;
        } else {
            return Err(Reply::err("ERR syntax error"));
        }
        i += 1;
    }
    // A copy: the argument is a slice of the connection's read buffer, which a stored slice
    // would keep alive whole (with whatever else arrived in it).
    let value = Bytes::copy_from_slice(&args[2]);
    let cache = &shared.cache;
    if !xx {
        let if_version = nx.then_some(0);
        return match cache.write(k, value, WriteOptions { ttl, if_version }) {
            Ok(_) => Ok(Reply::Status("OK")),
            Err(Error::VersionMismatch { .. }) => Ok(Reply::Null),
            Err(e) => Err(core_error(&e)),
        };
    }
    // XX: write over the version seen; another writer in between means try again.
    for _ in 0..16 {
        let seen = cache.version(k);
        if seen == 0 {
            return Ok(Reply::Null);
        }
        match cache.write(k, value.clone(), WriteOptions { ttl, if_version: Some(seen) }) {
            Ok(_) => return Ok(Reply::Status("OK")),
            Err(Error::VersionMismatch { .. }) => continue,
            Err(e) => return Err(core_error(&e)),
        }
    }
    Err(Reply::err("ERR the key kept changing; try again"))
}

/// Checks `user`/`pass` against the password; only the `default` user exists.
fn check_password(shared: &Shared, client: &mut Client, user: &[u8], pass: &[u8]) -> Result<(), Failed> {
    let Some(secret) = &shared.settings.server.requirepass else {
        return Err(Reply::err(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ));
    };
    // Both checks always run, so the time taken does not tell which one failed.
    let user_ok = user == b"default";
    if secret.matches(pass) & user_ok {
        client.authenticated = true;
        Ok(())
    } else {
        shared.counters.auth_failures.fetch_add(1, Relaxed);
        Err(Reply::err("WRONGPASS invalid username-password pair or user is disabled."))
    }
}

fn auth(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Result<Reply, Failed> {
    match args.len() {
        2 => check_password(shared, client, b"default", &args[1])?,
        3 => check_password(shared, client, &args[1], &args[2])?,
        _ => return Err(arity("auth")),
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
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
             AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time",
        ));
    }
    client.proto = proto;
    if name.is_some() {
        client.name = name;
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

fn client_command(client: &mut Client, args: &[Bytes]) -> Result<Reply, Failed> {
    let Some(sub) = args.get(1) else { return Err(arity("client")) };
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    if is(b"setinfo") && args.len() == 4 {
        // redis-py and node-redis send their library name and version on connect.
        Ok(Reply::Status("OK"))
    } else if is(b"setname") && args.len() == 3 {
        client.name = Some(valid_name(&args[2])?).filter(|n| !n.is_empty());
        Ok(Reply::Status("OK"))
    } else if is(b"getname") && args.len() == 2 {
        Ok(client.name.clone().map_or(Reply::Null, Reply::Bulk))
    } else if is(b"id") && args.len() == 2 {
        Ok(Reply::Int(client.id as i64))
    } else {
        Err(Reply::Error(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", printable(sub, ECHOED_NAME))))
    }
}
