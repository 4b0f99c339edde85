//! HttpSource against a real HTTP/1.1 server on 127.0.0.1 (hyper), and behind a Healer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::executor::block_on;
use healcache::{Cache, Healer, HealingConfig, Source, SourceAnswer, SourceError};
use healcache_http::{AllowPrivate, HttpOptions, HttpSource};
use http_body_util::Full;
use hyper::{Request, Response};

/// What the server answers for each path (status, body); unknown paths are 404. Requests seen are
/// logged (path and query, as they arrived on the wire).
type Routes = Arc<Mutex<HashMap<String, (u16, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Server {
    routes: Routes,
    seen: Arc<Mutex<Vec<String>>>,
    addr: Option<SocketAddr>,
}

impl Server {
    /// Serves on a free loopback port on a thread of its own (its own runtime: the client's
    /// runtime is the crate's).
    fn start() -> Server {
        let mut s = Server::default();
        let (routes, seen) = (s.routes.clone(), s.seen.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (routes, seen) = (routes.clone(), seen.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (routes, seen) = (routes.clone(), seen.clone());
                            async move {
                                let pq = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                                seen.lock().unwrap().push(pq.clone());
                                let path = req.uri().path().to_string();
                                let route = routes.lock().unwrap().get(&path).cloned();
                                let resp = match route {
                                    Some((999, body)) => {
                                        // slow: answers after 2 s
                                        tokio::time::sleep(Duration::from_secs(2)).await;
                                        Response::new(Full::new(Bytes::from(body)))
                                    }
                                    Some((302, _)) => Response::builder()
                                        .status(302)
                                        .header("location", "/users/redirected")
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                    Some((status, body)) => {
                                        Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap()
                                    }
                                    None => Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                                };
                                Ok::<_, Infallible>(resp)
                            }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                    });
                }
            });
        });
        s.addr = Some(rx.recv().unwrap());
        s
    }

    fn url(&self, template_path: &str) -> String {
        format!("http://{}{}", self.addr.unwrap(), template_path)
    }

    fn route(&self, path: &str, status: u16, body: &[u8]) {
        self.routes.lock().unwrap().insert(path.to_string(), (status, body.to_vec()));
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The test servers listen on loopback, which sources may reach only when allowed explicitly.
fn local() -> HttpOptions {
    HttpOptions { allow_private: AllowPrivate::hosts(["127.0.0.1"]), ..HttpOptions::default() }
}

fn opts(timeout_ms: u64, cap: usize) -> HttpOptions {
    HttpOptions { timeout: Duration::from_millis(timeout_ms), max_body_bytes: cap, ..local() }
}

#[test]
fn statuses_map_to_answers() {
    let srv = Server::start();
    srv.route("/users/1", 200, b"{\"name\":\"ann\"}");
    srv.route("/users/gone", 410, b"");
    srv.route("/users/broken", 500, b"oops");
    srv.route("/users/teapot", 418, b"");
    srv.route("/users/moved", 302, b"");
    srv.route("/users/redirected", 200, b"followed");
    let src = HttpSource::new(&srv.url("/users/{key}"), local()).unwrap();
    assert_eq!(block_on(src.fetch_bytes("1")), Ok(SourceAnswer::Value(b"{\"name\":\"ann\"}".to_vec())));
    assert_eq!(block_on(src.fetch_bytes("nobody")), Ok(SourceAnswer::NotFound));
    assert_eq!(block_on(src.fetch_bytes("gone")), Ok(SourceAnswer::NotFound));
    assert_eq!(block_on(src.fetch_bytes("broken")), Err(SourceError::Unavailable));
    assert_eq!(block_on(src.fetch_bytes("teapot")), Err(SourceError::Unavailable));
    // redirects are never followed
    assert_eq!(block_on(src.fetch_bytes("moved")), Err(SourceError::Unavailable));
    assert!(!srv.seen().contains(&"/users/redirected".to_string()), "{:?}", srv.seen());
}

#[test]
fn hostile_keys_arrive_as_one_encoded_segment_or_are_refused() {
    let srv = Server::start();
    let src = HttpSource::new(&srv.url("/users/{key}/profile"), local()).unwrap();
    for k in ["../admin", "a/b?c#d", "%2E%2E", "@evil.com", "a b"] {
        assert_eq!(block_on(src.fetch_bytes(k)), Ok(SourceAnswer::NotFound), "{k}");
    }
    assert_eq!(
        srv.seen(),
        [
            "/users/..%2Fadmin/profile",
            "/users/a%2Fb%3Fc%23d/profile",
            "/users/%252E%252E/profile",
            "/users/%40evil.com/profile",
            "/users/a%20b/profile"
        ]
    );
    for k in ["", ".", "..", "a\nb", "a\0b"] {
        assert_eq!(block_on(src.fetch_bytes(k)), Err(SourceError::Refused), "{k:?}");
    }
    assert_eq!(srv.seen().len(), 5, "refused keys never reach the server");
    let q = HttpSource::new(&srv.url("/get?id={key}&v=1"), local()).unwrap();
    block_on(q.fetch_bytes("a&b=c")).unwrap();
    assert_eq!(srv.seen().last().unwrap(), "/get?id=a%26b%3Dc&v=1");
}

#[test]
fn bad_templates_and_options_are_refused() {
    for t in ["http://{key}.example/x", "ftp://127.0.0.1/{key}", "http://127.0.0.1/x{key}", "http://127.0.0.1/x"] {
        let e = HttpSource::new(t, local()).unwrap_err();
        assert_eq!(e.code(), "InvalidConfig", "{t}");
    }
    let t = "http://127.0.0.1:9/{key}";
    assert_eq!(HttpSource::new(t, opts(0, 10)).unwrap_err().code(), "InvalidConfig");
    assert_eq!(HttpSource::new(t, opts(10, 0)).unwrap_err().code(), "InvalidConfig");
    // the body cap is a per-source option: its refusal names it, so every host shows its name
    let e = HttpSource::new(t, opts(10, 0)).unwrap_err();
    assert!(matches!(e, healcache::Error::InvalidConfig { field: "max_body_bytes", .. }), "{e:?}");
    assert_eq!(HttpSource::new(t, opts(10, 10)).unwrap().template(), t);
}

#[test]
fn oversize_bodies_slow_answers_and_closed_ports_fail() {
    let srv = Server::start();
    srv.route("/v/big", 200, &[b'x'; 4096]);
    srv.route("/v/fits", 200, &[b'y'; 4096]);
    srv.route("/v/slow", 999, b"late");
    let src = HttpSource::new(&srv.url("/v/{key}"), opts(300, 4095)).unwrap();
    assert_eq!(block_on(src.fetch_bytes("big")), Err(SourceError::Unavailable));
    let src = HttpSource::new(&srv.url("/v/{key}"), opts(300, 4096)).unwrap();
    assert_eq!(block_on(src.fetch_bytes("fits")), Ok(SourceAnswer::Value(vec![b'y'; 4096])));
    assert_eq!(block_on(src.fetch_bytes("slow")), Err(SourceError::Timeout));
    // a port nobody listens on (bound, then closed)
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = HttpSource::new(&format!("http://127.0.0.1:{port}/{{key}}"), opts(300, 10)).unwrap();
    assert_eq!(block_on(closed.fetch_bytes("x")), Err(SourceError::Unavailable));
}

#[test]
fn mapped_sources_convert_bodies() {
    let srv = Server::start();
    srv.route("/n/7", 200, b"7");
    srv.route("/n/bad", 200, b"seven");
    let src = HttpSource::new(&srv.url("/n/{key}"), local())
        .unwrap()
        .map(|b| String::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok()).ok_or(SourceError::Unavailable));
    assert_eq!(block_on(src.fetch("7")), Ok(SourceAnswer::Value(7)));
    assert_eq!(block_on(src.fetch("bad")), Err(SourceError::Unavailable));
    assert_eq!(block_on(src.fetch("none")), Ok(SourceAnswer::NotFound));
}

/// Self-healing end to end over real HTTP: a cache filled from the "database" the server
/// serves, drift behind its back, a healer that finds and repairs it.
#[test]
fn healer_repairs_drift_from_an_http_source() {
    let srv = Server::start();
    let cache: Cache<Vec<u8>> = Cache::builder().build().unwrap();
    for i in 0..200 {
        let v = format!("v{i}").into_bytes();
        srv.route(&format!("/users/u{i}"), 200, &v);
        cache.set(&format!("user:u{i}"), v).unwrap();
    }
    // drift: 20 changed at the source, 10 deleted there
    for i in 0..20 {
        srv.route(&format!("/users/u{i}"), 200, format!("new{i}").as_bytes());
    }
    for i in 20..30 {
        srv.routes.lock().unwrap().remove(&format!("/users/u{i}"));
    }
    let h = Healer::new(cache.clone(), HealingConfig { sample_rate: 1.0, ..Default::default() }).unwrap();
    // `{key}` is the whole cache key; this server names users without the `user:` prefix
    let base = srv.url("/users/{key}");
    let src = HttpSource::new(&base, local()).unwrap();
    h.register_source("user:", StripPrefix("user:", src)).unwrap();
    let r = block_on(h.run_interval());
    assert_eq!((r.verified, r.consistent, r.drift, r.repaired, r.failures), (200, 170, 30, 30, 0));
    assert_eq!(cache.get("user:u3").as_deref(), Some(&b"new3"[..]));
    assert_eq!(cache.get("user:u25"), None);
    assert_eq!(cache.len(), 190);
    let r = block_on(h.run_interval());
    assert_eq!((r.verified, r.consistent, r.drift), (190, 190, 0));
    let s = h.score("user:").unwrap();
    assert_eq!((s.sampled, s.repaired), (390, 30));
    assert!((s.score - 360.0 / 390.0).abs() < 1e-9);
}

/// Test adapter: the server's paths name users without the cache's `user:` prefix.
struct StripPrefix(&'static str, HttpSource);

impl Source<Vec<u8>> for StripPrefix {
    fn fetch(&self, key: &str) -> futures::future::BoxFuture<'static, Result<SourceAnswer<Vec<u8>>, SourceError>> {
        self.1.fetch_bytes(key.strip_prefix(self.0).unwrap_or(key))
    }
}

/// A fetch dropped mid-request (its waiter went away) ends without an answer and leaves the
/// source working: the next request is served normally.
#[test]
fn dropped_fetches_are_aborted() {
    let srv = Server::start();
    srv.route("/v/slow", 999, b"late");
    srv.route("/v/ok", 200, b"ok");
    let src = HttpSource::new(&srv.url("/v/{key}"), opts(5_000, 100)).unwrap();
    let fut = src.fetch_bytes("slow");
    let polled = block_on(futures::future::select(fut, futures_timer(Duration::from_millis(100))));
    assert!(matches!(polled, futures::future::Either::Right(_)), "the slow request answered early");
    drop(polled);
    assert_eq!(block_on(src.fetch_bytes("ok")), Ok(SourceAnswer::Value(b"ok".to_vec())));
}

/// A sleep that needs no runtime (a thread and a channel).
fn futures_timer(d: Duration) -> futures::channel::oneshot::Receiver<()> {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    rx
}

/// Loopback, private and link-local destinations are refused unless allowed: an IP literal before
/// any connection, a name after it resolves; the server never sees the request.
#[test]
fn non_public_destinations_are_refused_by_default() {
    let srv = Server::start();
    srv.route("/v/1", 200, b"one");
    let port = srv.addr.unwrap().port();
    for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] {
        let t = format!("http://{host}:{port}/v/{{key}}");
        let src = HttpSource::new(&t, HttpOptions::default()).unwrap();
        assert_eq!(block_on(src.fetch_bytes("1")), Err(SourceError::Unavailable), "{host} reached by default");
        // allowed for that host only
        let other = HttpSource::new(
            &t,
            HttpOptions { allow_private: AllowPrivate::hosts(["api.internal"]), ..HttpOptions::default() },
        )
        .unwrap();
        assert_eq!(
            block_on(other.fetch_bytes("1")),
            Err(SourceError::Unavailable),
            "{host} reached through another host's allowance"
        );
    }
    assert!(srv.seen().is_empty(), "a refused destination was contacted: {:?}", srv.seen());
    for allow in [AllowPrivate::hosts(["127.0.0.1"]), AllowPrivate::All] {
        let src = HttpSource::new(&srv.url("/v/{key}"), HttpOptions { allow_private: allow, ..HttpOptions::default() })
            .unwrap();
        assert_eq!(block_on(src.fetch_bytes("1")), Ok(SourceAnswer::Value(b"one".to_vec())));
    }
    let by_name = HttpSource::new(
        &format!("http://localhost:{port}/v/{{key}}"),
        HttpOptions { allow_private: AllowPrivate::hosts(["LOCALHOST"]), ..HttpOptions::default() },
    )
    .unwrap();
    assert_eq!(block_on(by_name.fetch_bytes("1")), Ok(SourceAnswer::Value(b"one".to_vec())));
}

/// Credentials in a template never reach `Debug` output.
#[test]
fn debug_output_redacts_credentials() {
    let src =
        HttpSource::new("https://svc:s3cret@api.example/users/{key}?token=abc123&v=2", HttpOptions::default()).unwrap();
    let d = format!("{src:?}");
    assert!(!d.contains("s3cret") && !d.contains("abc123"), "{d}");
    assert!(d.contains("https://svc:***@api.example/users/{key}?token=***&v=***"), "{d}");
    assert_eq!(healcache_http::redact("http://h/x/{key}"), "http://h/x/{key}");
}

/// Serves one request on a loopback port with a chunked body (no Content-Length) made of
/// `chunks`; then ends the body (`end`), or leaves it open until the client hangs up, which it
/// reports on the channel returned.
fn chunked_once(chunks: Vec<Vec<u8>>, end: bool) -> (String, std::sync::mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/c/{{key}}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the client hung up before its request ended");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n").unwrap();
        for c in &chunks {
            s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).unwrap();
            s.write_all(c).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        if end {
            s.write_all(b"0\r\n\r\n").unwrap();
        }
        s.flush().unwrap();
        // until the client hangs up (after a whole body: when it has read it)
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    (url, rx)
}

/// P5, an HTTP source's body (`max_body_bytes`, default 1 MiB; over it a failed answer, read no
/// further), on the chunked path where no Content-Length warns ahead: a body of exactly the
/// default 1,048,576 bytes is the value; one byte more is `Unavailable` as soon as that byte
/// arrives, though the body never ends (reading on would wait for the 5 s timeout), and the
/// connection is dropped. The same at a cap of 10 with the excess inside one chunk.
#[test]
fn chunked_bodies_at_and_past_the_body_cap() {
    const MIB: usize = 1_048_576;
    assert_eq!(HttpOptions::default().max_body_bytes, MIB, "the documented default");
    let options = HttpOptions { timeout: Duration::from_secs(5), ..local() };
    assert_eq!(options.max_body_bytes, MIB);
    // 16 chunks of 64 KiB: exactly the cap, then the end of the body
    let (url, _) = chunked_once(vec![vec![b'a'; MIB / 16]; 16], true);
    let src = HttpSource::new(&url, options.clone()).unwrap();
    assert_eq!(block_on(src.fetch_bytes("whole")), Ok(SourceAnswer::Value(vec![b'a'; MIB])));
    // the same, then a chunk of one byte, and the body left open
    let mut chunks = vec![vec![b'a'; MIB / 16]; 16];
    chunks.push(b"b".to_vec());
    let (url, hung_up) = chunked_once(chunks, false);
    let src = HttpSource::new(&url, options).unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(block_on(src.fetch_bytes("over")), Err(SourceError::Unavailable));
    assert!(t0.elapsed() < Duration::from_secs(4), "read on past the cap: {:?}", t0.elapsed());
    hung_up.recv_timeout(Duration::from_secs(4)).expect("the client dropped the connection");
    // a small cap: 10 bytes in two chunks are the value; 11 in one chunk are refused
    let (url, _) = chunked_once(vec![b"01234".to_vec(), b"56789".to_vec()], true);
    let src = HttpSource::new(&url, opts(5_000, 10)).unwrap();
    assert_eq!(block_on(src.fetch_bytes("ten")), Ok(SourceAnswer::Value(b"0123456789".to_vec())));
    let (url, hung_up) = chunked_once(vec![b"0123456789X".to_vec()], false);
    let src = HttpSource::new(&url, opts(5_000, 10)).unwrap();
    assert_eq!(block_on(src.fetch_bytes("eleven")), Err(SourceError::Unavailable));
    hung_up.recv_timeout(Duration::from_secs(4)).expect("the client dropped the connection");
}
