//! What the tests of the invalidation bus and of tags share: a redis-server, caches on it with
//! a long TTL, and waiting for what another instance does.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use healcache::tier::MsgPack;
use healcache::Cache;
use healcache_redis::RedisTransport;
use healcache_rt::{IoSpawner, IoTimer};
use healcache_testkit::RedisServer;
use serde_json::Value;

pub fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (.ci/setup-server.sh) to run these tests")
}

/// A cache on `url` whose entries live 600 s, kept `grace` longer as a fallback.
pub fn cache_with_grace(url: &str, grace: Duration) -> Cache<Value> {
    let b = Cache::builder().timer(IoTimer).spawner(IoSpawner).ttl(Duration::from_secs(600));
    let b = if grace.is_zero() { b } else { b.grace(grace) };
    b.shared_tier(RedisTransport::connect(url).unwrap(), MsgPack::new()).build().unwrap()
}

/// An unconditional write of `payload` under cache key `key` (prefix `hc1`), as the core sends
/// it to the transport.
pub fn write_request(key: &str, payload: &[u8], deadline: Duration) -> healcache::tier::WriteRequest {
    use healcache::codec::{self, Kind, Limits, PayloadCodec, Token};
    let keys = healcache::keys::l2_keys("hc1", key);
    let envelope = codec::encode(
        keys.value.as_bytes(),
        Kind::Value,
        PayloadCodec::Raw,
        Token::default(),
        60_000,
        0,
        0,
        payload,
        &Limits::default(),
    )
    .unwrap();
    let expect = healcache::tier::Expect::Any;
    healcache::tier::WriteRequest { keys, envelope, px_ms: 60_000, expect, deadline, release: None }
}

pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// An example binary of this crate run as one instance of a fleet: commands on its stdin, one
/// JSON answer per line on its stdout (the first is "ready"); killed and reaped when dropped,
/// signalled by its own pid, never by name.
pub struct Instance {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Instance {
    /// Starts `example` (built by `cargo test` beside this test's binary) with `args`.
    pub fn start(example: &str, args: &[&str]) -> Instance {
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("examples").join(example);
        assert!(
            bin.exists(),
            "{} is built by `cargo test -p healcache-redis` (or `cargo build -p healcache-redis --release --example {example}`)",
            bin.display()
        );
        let mut child = Command::new(bin).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let mut n = Instance { child, stdin, out: std::io::BufReader::new(stdout) };
        assert_eq!(n.read(), Value::from("ready"));
        n
    }

    pub fn send(&mut self, cmd: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn read(&mut self) -> Value {
        use std::io::BufRead;
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    pub fn cmd(&mut self, cmd: &str) -> Value {
        self.send(cmd);
        self.read()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to this child's own pid, which is not reaped before drop
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill_now(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `example`, an example binary of this crate built beside this test's binary (by
/// `cargo test -p healcache-redis`, or `cargo build -p healcache-redis --release --example NAME`).
pub fn example_path(example: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("examples").join(example);
    assert!(
        bin.exists(),
        "{} is built by `cargo build -p healcache-redis --release --example {example}`",
        bin.display()
    );
    bin
}
