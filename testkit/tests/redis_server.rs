//! The redis-server harness against a real redis-server.

use std::io;
use std::path::Path;
use std::time::Duration;

use healcache_testkit::resp::{Reply, RespConn};
use healcache_testkit::{redis_available, RedisOptions, RedisServer};

fn ok(r: Reply) {
    assert_eq!(r, Reply::Simple("OK".into()));
}

fn noperm(r: Reply) {
    match r {
        Reply::Error(e) => assert!(e.starts_with("NOPERM"), "{e}"),
        other => panic!("expected NOPERM, got {other:?}"),
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Commands are counted by name, scripts' calls included; a command never run counts 0.
#[test]
fn command_calls_counts_each_command_run() {
    let r = RedisServer::start().unwrap();
    assert_eq!(r.command_calls("get").unwrap(), 0);
    let mut c = r.connect().unwrap();
    c.cmd(&["GET", "a"]).unwrap();
    c.cmd(&["GET", "b"]).unwrap();
    c.cmd(&["EVAL", "return redis.call('GET', 'c')", "0"]).unwrap();
    assert_eq!(r.command_calls("get").unwrap(), 3);
    assert_eq!(r.command_calls("getex").unwrap(), 0, "a name is matched whole");
}

#[test]
fn redis_server_is_installed() {
    assert!(redis_available(), "redis-server is missing: run .ci/setup-server.sh");
}

#[test]
fn starts_on_a_loopback_port_and_answers_ping() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.url(), format!("redis://127.0.0.1:{}", a.port()));
    assert_eq!(a.url_via("127.0.0.1:7".parse().unwrap()), "redis://127.0.0.1:7");
    assert_eq!(a.addr().to_string(), format!("127.0.0.1:{}", a.port()));
    assert!(alive(a.pid()));
    let mut c = a.connect().unwrap();
    assert_eq!(c.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    // No persistence: the test server never writes a dump or an AOF.
    let save = c.cmd(&["CONFIG", "GET", "save"]).unwrap();
    assert_eq!(save, Reply::Array(Some(vec![Reply::Bulk(Some(b"save".to_vec())), Reply::Bulk(Some(vec![]))])));
    let bind = c.cmd(&["CONFIG", "GET", "bind"]).unwrap();
    assert_eq!(
        bind,
        Reply::Array(Some(vec![Reply::Bulk(Some(b"bind".to_vec())), Reply::Bulk(Some(b"127.0.0.1".to_vec()))]))
    );
}

#[test]
fn restricted_user_cannot_scan_wipe_or_debug_but_can_do_cache_work() {
    let s = RedisServer::start_restricted().unwrap();
    let (user, pw) = s.credentials().unwrap();
    assert_eq!(user, "hc");
    assert_eq!(s.url(), format!("redis://hc:{pw}@127.0.0.1:{}", s.port()));
    assert_eq!(s.url_via("127.0.0.1:7".parse().unwrap()), format!("redis://hc:{pw}@127.0.0.1:7"));
    let mut c = s.connect().unwrap();
    noperm(c.cmd(&["KEYS", "*"]).unwrap());
    noperm(c.cmd(&["FLUSHALL"]).unwrap());
    noperm(c.cmd(&["FLUSHDB"]).unwrap());
    noperm(c.cmd(&["DEBUG", "SLEEP", "0"]).unwrap());
    // Not through a script either.
    let r = c.cmd(&["EVAL", "return redis.call('KEYS', '*')", "0"]).unwrap();
    assert!(matches!(&r, Reply::Error(e) if e.contains("can't run this command")), "{r:?}");

    ok(c.cmd(&["SET", "k", "v", "PX", "60000"]).unwrap());
    assert_eq!(c.cmd(&["GET", "k"]).unwrap(), Reply::Bulk(Some(b"v".to_vec())));
    assert_eq!(
        c.cmd(&["EVAL", "return redis.call('GET', KEYS[1])", "1", "k"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    assert!(matches!(c.cmd(&["SCAN", "0", "MATCH", "k*"]).unwrap(), Reply::Array(Some(_))));
    assert_eq!(c.cmd(&["UNLINK", "k"]).unwrap(), Reply::Int(1));
    assert_eq!(c.cmd(&["PUBLISH", "ch", "m"]).unwrap(), Reply::Int(0));

    // The refusals above come from the ACL: the admin user may DEBUG on the same server.
    let mut admin = s.connect_admin().unwrap();
    ok(admin.cmd(&["DEBUG", "SLEEP", "0"]).unwrap());
    assert_ne!(s.admin_url(), s.url());

    // The default user is off: an unauthenticated client can do nothing.
    let mut anon = RespConn::connect(s.addr(), Duration::from_secs(5)).unwrap();
    let r = anon.cmd(&["PING"]).unwrap();
    assert!(matches!(&r, Reply::Error(e) if e.starts_with("NOAUTH")), "{r:?}");
    let r = anon.cmd(&["AUTH", "default", ""]).unwrap();
    assert!(r.is_error(), "{r:?}");
}

#[test]
fn a_custom_acl_user_is_used_as_given() {
    let opts = RedisOptions { acl_user: Some(("svc".into(), "pw-1.x~Y_z".into())), ..Default::default() };
    let s = RedisServer::start_with(opts).unwrap();
    assert_eq!(s.url(), format!("redis://svc:pw-1.x~Y_z@127.0.0.1:{}", s.port()));
    let mut c = s.connect().unwrap();
    noperm(c.cmd(&["KEYS", "*"]).unwrap());
    let mut wrong = RespConn::connect(s.addr(), Duration::from_secs(5)).unwrap();
    assert!(wrong.cmd(&["AUTH", "svc", "nope"]).unwrap().is_error());
    // Debug output never shows a password.
    assert!(!format!("{s:?}").contains("pw-1"));
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    for (user, pw) in
        [("a b", "pw"), ("hc", "p w"), ("hc", ""), ("", "pw"), ("hc", "p\"w"), ("default", "pw"), ("hcadmin", "pw")]
    {
        let opts = RedisOptions { acl_user: Some((user.into(), pw.into())), ..Default::default() };
        let e = RedisServer::start_with(opts).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{user:?} {pw:?}: {e}");
    }
    // 128 characters is the longest password accepted, 129 is refused.
    let at = RedisOptions { acl_user: Some(("hc".into(), "p".repeat(128))), ..Default::default() };
    RedisServer::start_with(at).unwrap();
    let over = RedisOptions { acl_user: Some(("hc".into(), "p".repeat(129))), ..Default::default() };
    assert_eq!(RedisServer::start_with(over).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    let opts = RedisOptions { maxmemory: Some("1mb\nuser x on".into()), ..Default::default() };
    assert_eq!(RedisServer::start_with(opts).unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

fn config_get(s: &RedisServer, key: &str) -> Reply {
    match s.connect_admin().unwrap().cmd(&["CONFIG", "GET", key]).unwrap() {
        Reply::Array(Some(mut kv)) if kv.len() == 2 => kv.pop().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn maxmemory_is_applied() {
    let opts = RedisOptions { maxmemory: Some("2mb".into()), ..Default::default() };
    let s = RedisServer::start_with(opts).unwrap();
    assert_eq!(config_get(&s, "maxmemory"), Reply::Bulk(Some(b"2097152".to_vec())));
    // noeviction is Redis's default: writes past the limit are refused.
    let mut c = s.connect().unwrap();
    let value = vec![b'x'; 256 * 1024];
    let mut oom = false;
    for i in 0..32 {
        let key = format!("k{i}");
        if let Reply::Error(e) = c.cmd(&[b"SET".as_slice(), key.as_bytes(), &value]).unwrap() {
            assert!(e.starts_with("OOM"), "{e}");
            oom = true;
            break;
        }
    }
    assert!(oom, "8 MB written under a 2 MB maxmemory with noeviction");
}

#[test]
fn config_set_applies_now_and_after_a_restart() {
    let mut s =
        RedisServer::start_with(RedisOptions { maxmemory: Some("2mb".into()), ..RedisOptions::restricted() }).unwrap();
    s.config_set("maxmemory-policy", "allkeys-lru").unwrap();
    s.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60").unwrap();
    s.config_set("maxmemory-policy", "allkeys-lfu").unwrap(); // the last value wins
    assert_eq!(config_get(&s, "maxmemory-policy"), Reply::Bulk(Some(b"allkeys-lfu".to_vec())));
    s.restart().unwrap();
    assert_eq!(config_get(&s, "maxmemory-policy"), Reply::Bulk(Some(b"allkeys-lfu".to_vec())));
    assert_eq!(config_get(&s, "maxmemory"), Reply::Bulk(Some(b"2097152".to_vec())));
    let limits = config_get(&s, "client-output-buffer-limit");
    assert!(limits.as_str().unwrap().contains("pubsub 33554432 8388608 60"), "{limits:?}");
    // With eviction on, 8 MB of writes under 2 MB succeed (older keys are evicted).
    let mut c = s.connect().unwrap();
    let value = vec![b'x'; 256 * 1024];
    for i in 0..32 {
        let key = format!("k{i}");
        assert_eq!(c.cmd(&[b"SET".as_slice(), key.as_bytes(), &value]).unwrap(), Reply::Simple("OK".into()));
    }
}

#[test]
fn config_set_refuses_the_kits_own_settings_and_bad_values() {
    let mut s = RedisServer::start().unwrap();
    for (key, value) in [
        ("bind", "0.0.0.0"),
        ("port", "6379"),
        ("save", "60 1"),
        ("appendonly", "yes"),
        ("dir", "tmp"),
        ("requirepass", "x"),
        ("enable-debug-command", "yes"),
        ("MAXMEMORY", "1mb"),
        ("", "1"),
        ("maxmemory", ""),
        ("maxmemory", "1mb\nuser x on"),
        ("maxmemory", "1mb  2"),
        ("maxmemory", "1mb "),
        ("maxmemory-policy", "no-such-policy"),
        ("no-such-setting", "1"),
    ] {
        let e = s.config_set(key, value).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{key:?} {value:?}: {e}");
    }
    // 256 characters is the longest value accepted; 257 is refused before Redis sees it.
    let at = format!("pubsub {} {}", "1".repeat(128), "1".repeat(120));
    assert_eq!(at.len(), 256);
    let e = s.config_set("client-output-buffer-limit", &at).unwrap_err();
    assert!(e.to_string().contains("CONFIG SET"), "refused by Redis, not by the length check: {e}");
    let over = format!("pubsub {} {}", "1".repeat(128), "1".repeat(121));
    let e = s.config_set("client-output-buffer-limit", &over).unwrap_err();
    assert!(e.to_string().contains("at most 256"), "{e}");
    // Nothing refused was kept: a restart starts cleanly.
    s.restart().unwrap();
    assert_eq!(config_get(&s, "bind"), Reply::Bulk(Some(b"127.0.0.1".to_vec())));
}

#[test]
fn kill_and_restart_keep_the_port_with_a_new_process() {
    let mut s = RedisServer::start_restricted().unwrap();
    let (port, pid) = (s.port(), s.pid());
    ok(s.connect().unwrap().cmd(&["SET", "k", "v"]).unwrap());
    s.kill();
    assert!(!alive(pid), "killed and reaped");
    assert!(!s.is_running());
    assert_eq!(s.connect().err().map(|e| e.kind()), Some(io::ErrorKind::ConnectionRefused));
    s.kill(); // twice is harmless
    s.restart().unwrap();
    assert_eq!(s.port(), port);
    assert_ne!(s.pid(), pid);
    assert!(s.is_running());
    let mut c = s.connect().unwrap();
    // Nothing persisted, and the ACL is the same after the restart.
    assert_eq!(c.cmd(&["GET", "k"]).unwrap(), Reply::Bulk(None));
    noperm(c.cmd(&["FLUSHALL"]).unwrap());
    // Restart without a kill first also works (it kills the running process itself).
    let pid2 = s.pid();
    s.restart().unwrap();
    assert!(!alive(pid2));
    assert_eq!(s.port(), port);
}

#[test]
fn stop_freezes_the_server_until_cont() {
    let s = RedisServer::start().unwrap();
    let mut c = s.connect().unwrap();
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s.stop();
    c.send(&["PING"]).unwrap();
    let e = c.read_reply().unwrap_err();
    assert!(matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{e}");
    s.cont();
    c.stream().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read_reply().unwrap(), Reply::Simple("PONG".into()));
}

#[test]
fn a_stopped_server_can_be_killed_and_restarted() {
    let mut s = RedisServer::start().unwrap();
    let pid = s.pid();
    s.stop();
    s.restart().unwrap();
    assert!(!alive(pid));
    assert_eq!(s.connect().unwrap().cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}

#[test]
fn drop_kills_and_reaps_the_process() {
    let s = RedisServer::start().unwrap();
    let (pid, addr) = (s.pid(), s.addr());
    drop(s);
    assert!(!alive(pid));
    assert!(RespConn::connect(addr, Duration::from_secs(1)).is_err());
}

#[test]
fn terminate_shuts_down_cleanly_also_when_stopped() {
    let mut s = RedisServer::start().unwrap();
    let pid = s.pid();
    let mut c = s.connect().unwrap();
    let status = s.terminate().unwrap();
    assert!(status.success(), "a clean exit, not the SIGKILL fallback: {status}");
    assert!(!alive(pid));
    // Redis closed its clients' connections on the way out.
    assert!(c.cmd(&["PING"]).is_err());
    assert!(s.terminate().is_none(), "nothing left to terminate");
    s.restart().unwrap();
    s.stop();
    assert!(s.terminate().unwrap().success());
}

#[test]
fn restart_reports_a_port_taken_meanwhile_and_works_once_it_is_free() {
    let mut s = RedisServer::start().unwrap();
    let port = s.port();
    s.kill();
    let blocker = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let e = s.restart().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains("Address already in use"), "the log says why: {e}");
    assert!(!s.is_running());
    drop(blocker);
    s.restart().unwrap();
    assert_eq!(s.port(), port);
    assert_eq!(s.connect().unwrap().cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}
