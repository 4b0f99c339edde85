//! Test harness: healcache-server started as a child process on a free loopback port, stopped
//! by its pid; raw sockets; a tiny HTTP source of truth.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "s3cret-for-tests";

pub struct Server {
    child: Child,
    pub port: u16,
    pub metrics_port: Option<u16>,
    _config: TempFile,
}

/// A file removed on drop.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn temp_file(name: &str, contents: &str) -> TempFile {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("healcache-server-test-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    TempFile(path)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Starts a server with `config` (the JSON settings file) and extra command-line flags.
    pub fn start(config: serde_json::Value, args: &[&str]) -> Server {
        Self::try_start(config, args, false)
    }

    /// The same with a metrics port.
    pub fn start_with_metrics(config: serde_json::Value, args: &[&str]) -> Server {
        Self::try_start(config, args, true)
    }

    fn try_start(config: serde_json::Value, args: &[&str], metrics: bool) -> Server {
        let file = temp_file("config.json", &config.to_string());
        // A port picked free may be taken before the child binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let metrics_port = metrics.then(free_port);
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_healcache-server"));
            cmd.arg("--port").arg(port.to_string()).arg("--config").arg(&file.0).args(args);
            if let Some(m) = metrics_port {
                cmd.arg("--metrics-port").arg(m.to_string());
            }
            let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    if s.write_all(b"PING\r\n").is_ok() {
                        let mut buf = [0u8; 64];
                        if let Ok(n) = s.read(&mut buf) {
                            if n > 0 {
                                return Server { child, port, metrics_port, _config: file };
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("healcache-server did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Private writable memory the server has mapped, in KiB: unlike RSS it counts room
    /// reserved and not yet touched.
    pub fn vm_data_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmData:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn connect(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Whether the child is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// One INFO field, read over a fresh authenticated connection.
    pub fn info_field(&self, field: &str, password: Option<&str>) -> String {
        let mut c = self.connect();
        if let Some(pw) = password {
            c.send(format!("AUTH {pw}\r\n").as_bytes());
            assert_eq!(c.line(), "+OK");
        }
        c.send(b"INFO\r\n");
        let text = c.bulk().unwrap();
        let text = String::from_utf8(text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {field} in INFO"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw client socket.
pub struct Raw {
    pub reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { reader: BufReader::new(s) }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Writes, ignoring a peer that has gone (some tests expect it to go).
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.reader.get_mut().write_all(bytes).is_ok()
    }

    /// One reply line without its CRLF ("" at EOF).
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        let _ = self.reader.read_line(&mut l);
        l.trim_end_matches(['\r', '\n']).to_string()
    }

    /// A bulk string reply (None for a null).
    pub fn bulk(&mut self) -> Option<Vec<u8>> {
        let head = self.line();
        let n: i64 = head.strip_prefix('$').unwrap_or_else(|| panic!("not a bulk: {head}")).parse().unwrap();
        self.bulk_body(n)
    }

    /// One whole RESP2/RESP3 reply, written out flat (`[a, b]`, `{k: v}`, `nil`, `:1`, `-ERR ...`).
    pub fn value(&mut self) -> String {
        let head = self.line();
        let (kind, rest) = head.split_at(1.min(head.len()));
        match kind {
            "$" | "=" => match self.bulk_body(rest.parse().unwrap()) {
                Some(v) => String::from_utf8_lossy(&v).into_owned(),
                None => "nil".into(),
            },
            "*" | "~" | ">" => {
                let n: i64 = rest.parse().unwrap();
                let items: Vec<String> = (0..n.max(0)).map(|_| self.value()).collect();
                format!("[{}]", items.join(", "))
            }
            "%" => {
                let n: i64 = rest.parse().unwrap();
                let items: Vec<String> = (0..n).map(|_| format!("{}: {}", self.value(), self.value())).collect();
                format!("{{{}}}", items.join(", "))
            }
            "_" => "nil".into(),
            _ => head,
        }
    }

    fn bulk_body(&mut self, n: i64) -> Option<Vec<u8>> {
        if n < 0 {
            return None;
        }
        let mut v = vec![0u8; n as usize + 2];
        self.reader.read_exact(&mut v).unwrap();
        v.truncate(n as usize);
        Some(v)
    }

    /// Whether the server closed the connection (EOF or reset) within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            self.stream().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// A source of truth over HTTP on loopback: `GET /items/<key>` answers the stored value or 404.
pub struct HttpSource {
    pub port: u16,
    pub values: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub requests: Arc<AtomicU64>,
}

impl HttpSource {
    pub fn start() -> HttpSource {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let values: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests = Arc::new(AtomicU64::new(0));
        let (v, r) = (Arc::clone(&values), Arc::clone(&requests));
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { continue };
                let (v, r) = (Arc::clone(&v), Arc::clone(&r));
                std::thread::spawn(move || serve_http(sock, &v, &r));
            }
        });
        HttpSource { port, values, requests }
    }

    pub fn set(&self, key: &str, value: &[u8]) {
        self.values.lock().unwrap().insert(key.to_string(), value.to_vec());
    }

    pub fn template(&self) -> String {
        format!("http://127.0.0.1:{}/items/{{key}}", self.port)
    }
}

fn serve_http(sock: TcpStream, values: &Mutex<HashMap<String, Vec<u8>>>, requests: &AtomicU64) {
    let mut reader = BufReader::new(sock);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let key = path.strip_prefix("/items/").map(percent_decode);
        let found = key.and_then(|k| values.lock().unwrap().get(&k).cloned());
        let head = match &found {
            Some(v) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", v.len()),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
        };
        let s = reader.get_mut();
        if s.write_all(head.as_bytes()).is_err() || s.write_all(found.as_deref().unwrap_or(&[])).is_err() {
            return;
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `f` until it is true or `within` passes.
/// A multibulk request of raw byte arguments, as a client sends it (the test kit's encoder).
pub fn multibulk<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    healcache_testkit::resp::encode(args)
}

pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// A reply of the redis crate as text (`nil` for none).
pub fn text(v: &redis::Value) -> String {
    use redis::Value;
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Nil => "nil".into(),
        Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

/// A map reply (RESP3) or flat pairs (RESP2) as (field, text) pairs.
pub fn map(v: &redis::Value) -> Vec<(String, String)> {
    use redis::Value;
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Array(a) => a.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect(),
        other => panic!("not a map: {other:?}"),
    }
}
