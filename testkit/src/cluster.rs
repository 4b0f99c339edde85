//! A local Redis Cluster: three `redis-server` children with `cluster-enabled yes`, each on a free
//! loopback port (and that port + 10000 for the cluster bus), each with its own config file and
//! directory under one temporary directory. The slots are split in three contiguous ranges and
//! assigned by hand (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`), so no `redis-cli` is needed.
//! Stopped by pid (SIGKILL, then reaped) when dropped.

use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp::{Reply, RespConn};

/// Primaries in the cluster.
pub const CLUSTER_PRIMARIES: usize = 3;
/// Hash slots of Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;
/// How long the start waits for every node to say `cluster_state:ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Tries at a set of free ports (a port and port + 10000 both free).
const PORT_ATTEMPTS: usize = 20;

struct Node {
    port: u16,
    child: Option<Child>,
}

/// A three-primary Redis Cluster on 127.0.0.1 (no replicas, no persistence, default user without
/// a password: the cluster is reachable from loopback only).
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts three primaries, splits the slots between them, and waits until every node says
    /// the cluster is ok.
    pub fn start() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("healcache-cluster-").tempdir()?;
        let mut cluster = RedisCluster { nodes: Vec::new(), dir };
        for _ in 0..CLUSTER_PRIMARIES {
            let port = free_cluster_port(&cluster.nodes)?;
            let mut node = Node { port, child: None };
            cluster.spawn(&mut node)?;
            cluster.nodes.push(node);
        }
        cluster.form()?;
        Ok(cluster)
    }

    fn node_dir(&self, port: u16) -> PathBuf {
        self.dir.path().join(format!("node-{port}"))
    }

    fn spawn(&self, node: &mut Node) -> io::Result<()> {
        let dir = self.node_dir(node.port);
        fs::create_dir_all(&dir)?;
        let d = dir.to_str().ok_or_else(|| io::Error::other("temp dir path is not UTF-8"))?;
        let conf = format!(
            "port {}\nbind 127.0.0.1\nprotected-mode yes\nsave \"\"\nappendonly no\ndaemonize no\n\
             dir \"{d}\"\nlogfile \"{d}/redis.log\"\ncluster-enabled yes\n\
             cluster-config-file \"{d}/nodes.conf\"\ncluster-node-timeout 5000\n",
            node.port
        );
        let path = dir.join("redis.conf");
        fs::File::create(&path)?.write_all(conf.as_bytes())?;
        // the executable `RedisServer` uses: `$REDIS_SERVER`, else `redis-server` on PATH
        let exe = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let child = Command::new(exe)
            .arg(&path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        node.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(mut c) = RespConn::connect(addr(node.port), Duration::from_secs(1)) {
                if matches!(c.cmd(&["PING"]), Ok(Reply::Simple(p)) if p == "PONG") {
                    return Ok(());
                }
            }
            if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(io::Error::other(format!("redis-server exited ({status}): {}", tail.join(" | "))));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "a cluster node gave no PONG"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Slots by hand, as `redis-cli --cluster create` does: a distinct config epoch per node,
    /// one contiguous range each, then every node meets the first.
    fn form(&self) -> io::Result<()> {
        for i in 0..self.nodes.len() {
            let mut c = self.connect(i)?;
            expect_ok(c.cmd(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?, "SET-CONFIG-EPOCH")?;
            let (from, to) = self.slot_range(i);
            expect_ok(c.cmd(&["CLUSTER", "ADDSLOTSRANGE", &from.to_string(), &to.to_string()])?, "ADDSLOTSRANGE")?;
            if i > 0 {
                let first = self.nodes[0].port.to_string();
                expect_ok(c.cmd(&["CLUSTER", "MEET", "127.0.0.1", &first])?, "MEET")?;
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut ok = 0;
            for i in 0..self.nodes.len() {
                let info = self.connect(i)?.cmd(&["CLUSTER", "INFO"])?;
                let text = match info {
                    Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                    _ => String::new(),
                };
                let known = text.contains(&format!("cluster_known_nodes:{}", self.nodes.len()));
                if text.contains("cluster_state:ok") && known {
                    ok += 1;
                }
            }
            if ok == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the cluster did not reach cluster_state:ok"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The slots node `i` serves: `(first, last)`, inclusive.
    pub fn slot_range(&self, i: usize) -> (u16, u16) {
        let n = self.nodes.len().max(1) as u32;
        let per = u32::from(CLUSTER_SLOTS) / n;
        let from = per * i as u32;
        let to = if i as u32 + 1 == n { u32::from(CLUSTER_SLOTS) - 1 } else { from + per - 1 };
        (from as u16, to as u16)
    }

    /// The index of the node serving `slot`.
    pub fn node_of_slot(&self, slot: u16) -> usize {
        (0..self.nodes.len()).find(|i| slot <= self.slot_range(*i).1).unwrap_or(self.nodes.len() - 1)
    }

    /// `redis://127.0.0.1:PORT` of every node (seed URLs for a cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://{}", addr(n.port))).collect()
    }

    /// The nodes' addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| addr(n.port)).collect()
    }

    /// The nodes' pids (of the processes running now).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.child.as_ref().map(|c| c.id())).collect()
    }

    /// A raw RESP connection to node `i`.
    pub fn connect(&self, i: usize) -> io::Result<RespConn> {
        RespConn::connect(addr(self.nodes[i].port), Duration::from_secs(5))
    }

    /// The errors every node has answered since it started, summed per kind (`INFO errorstats`:
    /// `("CROSSSLOT", 2)`, `("MOVED", 5)` ...).
    pub fn error_stats(&self) -> io::Result<Vec<(String, u64)>> {
        let mut all: Vec<(String, u64)> = Vec::new();
        for i in 0..self.nodes.len() {
            for (name, fields) in self.info_lines(i, "errorstats")? {
                let Some(kind) = name.strip_prefix("errorstat_") else { continue };
                let n = field(&fields, "count");
                match all.iter_mut().find(|(k, _)| k == kind) {
                    Some((_, c)) => *c += n,
                    None => all.push((kind.to_string(), n)),
                }
            }
        }
        Ok(all)
    }

    /// The commands every node has run since it started, summed per name (`INFO commandstats`):
    /// `(name, calls, failed calls, rejected calls)`.
    pub fn command_stats(&self) -> io::Result<Vec<(String, u64, u64, u64)>> {
        let mut all: Vec<(String, u64, u64, u64)> = Vec::new();
        for i in 0..self.nodes.len() {
            for (name, fields) in self.info_lines(i, "commandstats")? {
                let Some(cmd) = name.strip_prefix("cmdstat_") else { continue };
                let (c, f, r) =
                    (field(&fields, "calls"), field(&fields, "failed_calls"), field(&fields, "rejected_calls"));
                match all.iter_mut().find(|(k, ..)| k == cmd) {
                    Some(e) => {
                        e.1 += c;
                        e.2 += f;
                        e.3 += r;
                    }
                    None => all.push((cmd.to_string(), c, f, r)),
                }
            }
        }
        Ok(all)
    }

    /// The keys node `i` holds (`DBSIZE`).
    pub fn dbsize(&self, i: usize) -> io::Result<u64> {
        match self.connect(i)?.cmd(&["DBSIZE"])? {
            Reply::Int(n) => Ok(n.max(0) as u64),
            other => Err(io::Error::other(format!("DBSIZE answered {other:?}"))),
        }
    }

    fn info_lines(&self, i: usize, section: &str) -> io::Result<Vec<(String, String)>> {
        let text = match self.connect(i)?.cmd(&["INFO", section])? {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(io::Error::other(format!("INFO {section} answered {other:?}"))),
        };
        Ok(text.lines().filter_map(|l| l.trim().split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }
}

/// `name=value` from a comma-separated INFO line, 0 when absent.
pub(crate) fn field(fields: &str, name: &str) -> u64 {
    fields.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok()).unwrap_or(0)
}

fn expect_ok(r: Reply, what: &str) -> io::Result<()> {
    match r {
        Reply::Simple(ok) if ok == "OK" => Ok(()),
        other => Err(io::Error::other(format!("CLUSTER {what}: {other:?}"))),
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port whose cluster bus port (+10000) is free too, not taken by an earlier node.
fn free_cluster_port(taken: &[Node]) -> io::Result<u16> {
    for _ in 0..PORT_ATTEMPTS {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let clash = taken.iter().any(|n| n.port == port || n.port + 10000 == port || port + 10000 == n.port);
        if port > 55_000 || clash {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10000)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free pair of ports (port and port + 10000) for a cluster node"))
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SIGKILL by this child's own pid, then reap
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster").field("ports", &self.nodes.iter().map(|n| n.port).collect::<Vec<_>>()).finish()
    }
}
