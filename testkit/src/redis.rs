//! `redis-server` as a child process of the test, on a free loopback port.

use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::resp::{Reply, RespConn};

/// Settings the kit itself owns (loopback only, no persistence, the ACL users): `config_set` refuses them.
const KIT_SETTINGS: &str = "bind port unixsocket dir logfile save appendonly protected-mode daemonize \
                            enable-debug-command requirepass aclfile user masterauth replicaof slaveof";

/// The ACL rules of the restricted user: everything a cache client needs (GET/SET/EVAL/SCAN/UNLINK/
/// PUBLISH/SUBSCRIBE ...), nothing that scans or wipes the whole keyspace or debugs the server.
pub const RESTRICTED_ACL_RULES: &str = "~* &* +@all -keys -flushall -flushdb -debug";

/// How long a start or restart waits for the server to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `terminate` waits for a clean exit before it falls back to SIGKILL.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports `start` tries when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// How to start a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Run as this ACL user `(name, password)` with [`RESTRICTED_ACL_RULES`]; the `default` user is then
    /// switched off, so every client must authenticate. [`RedisServer::url`] carries these credentials.
    pub acl_user: Option<(String, String)>,
    /// `maxmemory`, in redis.conf syntax (`"2mb"`). Other settings (`maxmemory-policy` ...) go
    /// through [`RedisServer::config_set`].
    pub maxmemory: Option<String>,
}

impl RedisOptions {
    /// Options for the restricted ACL user `hc` with a random password: what the shared-tier suites run as.
    pub fn restricted() -> Self {
        RedisOptions { acl_user: Some(("hc".into(), random_secret())), ..Default::default() }
    }
}

/// A `redis-server` child process bound to 127.0.0.1 on its own port, with no persistence and its own
/// temporary directory. Signals go to its own pid only; dropping it kills and reaps the process.
pub struct RedisServer {
    opts: RedisOptions,
    /// Settings from `config_set`, written into redis.conf so a restart keeps them.
    config: Vec<(String, String)>,
    admin: Option<(String, String)>,
    port: u16,
    pid: u32,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// True when a `redis-server` executable can be found (`$REDIS_SERVER`, else `PATH`). Tests that need
/// one should fail with [`RedisServer::start`]'s message rather than skip: CI installs it
/// (`.ci/setup-server.sh`).
pub fn redis_available() -> bool {
    redis_server_path().is_ok()
}

fn redis_server_path() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("redis-server")).find(|p| p.is_file()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "redis-server is not installed (not on PATH, REDIS_SERVER unset): run .ci/setup-server.sh",
        )
    })
}

fn random_secret() -> String {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ u64::from(std::process::id()).rotate_left(32));
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// ACL names, passwords and memory settings go into redis.conf as words: anything that would split or
/// escape a word is refused rather than quoted.
fn check_word(what: &str, s: &str) -> io::Result<()> {
    // URL-unreserved characters only, so the credentials also go into `url()` unescaped.
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} must be 1-128 characters from A-Z a-z 0-9 - _ . ~"),
        ))
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a server without ACL users (the `default` user, no password).
    pub fn start() -> io::Result<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server running as the restricted ACL user (see [`RedisOptions::restricted`]).
    pub fn start_restricted() -> io::Result<Self> {
        Self::start_with(RedisOptions::restricted())
    }

    /// Starts a server with `opts` on a free port and waits until it answers PING.
    pub fn start_with(opts: RedisOptions) -> io::Result<Self> {
        if let Some((user, pw)) = &opts.acl_user {
            check_word("ACL user name", user)?;
            check_word("ACL password", pw)?;
            if user == "default" || user == "hcadmin" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the ACL user may not be `default` or `hcadmin`",
                ));
            }
        }
        if let Some(v) = &opts.maxmemory {
            check_word("maxmemory setting", v)?;
        }
        let admin = opts.acl_user.as_ref().map(|_| ("hcadmin".to_string(), random_secret()));
        let dir = tempfile::Builder::new().prefix("healcache-redis-").tempdir()?;
        let mut server = RedisServer { opts, config: Vec::new(), admin, port: 0, pid: 0, child: None, dir };
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Another process took the port between our probe and redis-server's bind: try another.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// `redis://[user:password@]127.0.0.1:PORT`, with the restricted user's credentials when set.
    pub fn url(&self) -> String {
        self.url_via(self.addr())
    }

    /// [`url`](Self::url) with its credentials but another address: the way to reach this server
    /// through a [`FaultProxy`](crate::FaultProxy) (`redis.url_via(proxy.addr())`).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        match &self.opts.acl_user {
            Some((u, p)) => format!("redis://{u}:{p}@{addr}"),
            None => format!("redis://{addr}"),
        }
    }

    /// A URL for the unrestricted `hcadmin` user, when the server runs with an ACL user (for test setup
    /// the restricted user may not do, like CONFIG SET or DEBUG SLEEP); otherwise the same as [`url`](Self::url).
    pub fn admin_url(&self) -> String {
        Self::url_for(self.admin.as_ref(), self.port)
    }

    fn url_for(user: Option<&(String, String)>, port: u16) -> String {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match user {
            Some((u, p)) => format!("redis://{u}:{p}@{addr}"),
            None => format!("redis://{addr}"),
        }
    }

    /// The restricted ACL user's `(name, password)`, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.opts.acl_user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The port, kept across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the current (or, after [`kill`](Self::kill), the last) process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while the process runs (also while stopped by [`stop`](Self::stop)).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// A raw RESP connection, authenticated as the restricted user when there is one.
    pub fn connect(&self) -> io::Result<RespConn> {
        self.connect_as(self.opts.acl_user.as_ref())
    }

    /// A raw RESP connection authenticated as `hcadmin` (when the server runs with an ACL user;
    /// otherwise as the default user).
    pub fn connect_admin(&self) -> io::Result<RespConn> {
        self.connect_as(self.admin.as_ref())
    }

    fn connect_as(&self, user: Option<&(String, String)>) -> io::Result<RespConn> {
        let mut conn = RespConn::connect(self.addr(), Duration::from_secs(5))?;
        if let Some((u, p)) = user {
            match conn.cmd(&["AUTH", u.as_str(), p.as_str()])? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("AUTH failed: {other:?}")))
                }
            }
        }
        Ok(conn)
    }

    /// How many times this server has run `command` (lowercase, as INFO names it) since it
    /// started or since `CONFIG RESETSTAT`, calls made by scripts included (`INFO commandstats`,
    /// as the unrestricted user); 0 when it never ran.
    pub fn command_calls(&self, command: &str) -> io::Result<u64> {
        let text = match self.connect_admin()?.cmd(&["INFO", "commandstats"])? {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(io::Error::other(format!("INFO commandstats answered {other:?}"))),
        };
        let prefix = format!("cmdstat_{command}:");
        Ok(text
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .map_or(0, |f| crate::cluster::field(f, "calls")))
    }

    /// Sets a redis.conf setting now (CONFIG SET, as the unrestricted user) and for every later
    /// [`restart`](Self::restart): `config_set("maxmemory-policy", "allkeys-lru")`,
    /// `config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")`. The value is words of
    /// `A-Z a-z 0-9 - _ . ~` separated by single spaces (at most 256 characters); the kit's own settings
    /// (bind, port, dir, save, appendonly, users ...) are refused.
    pub fn config_set(&mut self, key: &str, value: &str) -> io::Result<()> {
        let key_ok = !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !key_ok || KIT_SETTINGS.split_whitespace().any(|k| k == key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("config_set: {key:?} cannot be set")));
        }
        if value.len() > 256 || value.split(' ').any(|w| check_word("config value", w).is_err()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "config_set: the value must be words of A-Z a-z 0-9 - _ . ~ separated by single spaces, at most 256 characters",
            ));
        }
        match self.connect_admin()?.cmd(&["CONFIG", "SET", key, value])? {
            Reply::Simple(ok) if ok == "OK" => {}
            other => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CONFIG SET {key}: {other:?}"))),
        }
        self.config.retain(|(k, _)| k != key);
        self.config.push((key.to_string(), value.to_string()));
        Ok(())
    }

    /// SIGKILL by its own pid, then reap. Nothing happens when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL to this child's pid (std sends it by pid; it also ends a stopped process).
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (and SIGCONT, in case it is stopped): Redis closes its clients' connections and exits;
    /// then reap. Falls back to SIGKILL after 10 s. Returns how it exited (`None` when not running).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        signal(&child, libc::SIGCONT);
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGSTOP: the process keeps its sockets open but answers nothing until [`cont`](Self::cont).
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`stop`](Self::stop).
    pub fn cont(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            signal(child, sig);
        }
    }

    /// Kills the current process (if any) and starts a new one on the same port with the same options
    /// and an empty dataset, then waits for PING.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        // The old socket is gone once the child is reaped; redis-server sets SO_REUSEADDR, so only
        // another process grabbing the port could fail this. Retry briefly in case it is transient.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.spawn() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50))
                }
                r => return r,
            }
        }
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn write_conf(&self) -> io::Result<()> {
        let dir = self.dir.path().to_str().ok_or_else(|| io::Error::other("temp dir path is not UTF-8"))?;
        let mut conf = format!(
            "port {}\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\ndaemonize no\n\
             dir \"{dir}\"\nlogfile \"{dir}/redis.log\"\n",
            self.port
        );
        if let Some(m) = &self.opts.maxmemory {
            conf += &format!("maxmemory {m}\n");
        }
        for (key, value) in &self.config {
            conf += &format!("{key} {value}\n");
        }
        if let (Some((user, pw)), Some((admin, admin_pw))) = (&self.opts.acl_user, &self.admin) {
            // DEBUG is enabled for local connections so that the restricted user's refusal comes from
            // its ACL (NOPERM), not from the server-wide switch, and hcadmin can still DEBUG SLEEP.
            conf += "enable-debug-command local\nuser default off\n";
            conf += &format!("user {user} on >{pw} {RESTRICTED_ACL_RULES}\n");
            conf += &format!("user {admin} on >{admin_pw} ~* &* +@all\n");
        }
        let mut f = fs::File::create(self.conf_path())?;
        f.write_all(conf.as_bytes())
    }

    fn spawn(&mut self) -> io::Result<()> {
        self.write_conf()?;
        let _ = fs::remove_file(self.log_path());
        let child = Command::new(redis_server_path()?)
            .arg(self.conf_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.pid = child.id();
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = log_tail(&self.log_path());
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!("redis-server exited ({status}) on port {}: {log}", self.port),
                ));
            }
            if let Ok(mut conn) = self.connect() {
                if let Ok(Reply::Simple(pong)) = conn.cmd(&["PING"]) {
                    if pong == "PONG" {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} gave no PONG within {READY_TIMEOUT:?}", self.port),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Signals a child that is not yet reaped: its pid cannot have been reused by another process.
fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) with our own child's pid and a valid signal number has no memory effects.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn log_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for RedisServer {
    // Never prints the passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid)
            .field("acl_user", &self.opts.acl_user.as_ref().map(|(u, _)| u))
            .finish()
    }
}
