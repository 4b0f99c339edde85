//! An origin that saturates like a database: an HTTP server on loopback whose every query waits
//! for one of a fixed number of workers (first come, first served, in an unbounded queue) and then
//! takes a fixed time. A query whose client has gone away is still served, as a database does not
//! know its client left: that is what lets abandoned retries pin an overloaded origin.
//!
//! `GET /{key}` answers the key's JSON body (by default the JSON string `"{key}@origin"`), 404 for
//! a key under a prefix marked missing, and, with a [`Gate`], 503 at once when the queue is too
//! long to serve the query in time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{oneshot, Semaphore};

/// Rejects a query at once (503) when the origin is already too far behind to serve it in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The estimated wait (queries queued × latency / workers) above which a query is refused.
    pub max_wait: Duration,
    /// The queue length above which a query is refused.
    pub max_queue: usize,
}

#[derive(Clone, Debug)]
pub struct OriginOptions {
    /// The time one query holds a worker.
    pub latency: Duration,
    /// Queries served at once; the rest wait in line.
    pub workers: usize,
    pub gate: Option<Gate>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions { latency: Duration::from_millis(10), workers: 16, gate: None }
    }
}

/// Counters since the origin started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OriginStats {
    /// Queries received, rejected ones included.
    pub asked: u64,
    /// Queries answered after their service time (found or not).
    pub served: u64,
    /// Queries refused by the gate.
    pub rejected: u64,
    /// Queries waiting for a worker now.
    pub queued: u64,
    /// Queries holding a worker now.
    pub in_service: u64,
}

/// One query as received: when (since the origin started) and for which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub at: Duration,
    pub key: String,
}

struct State {
    latency: Duration,
    workers: usize,
    pool: Semaphore,
    started: Instant,
    gate: Mutex<Option<Gate>>,
    values: Mutex<HashMap<String, String>>,
    missing: Mutex<Vec<String>>,
    log: Mutex<Vec<Query>>,
    per_key: Mutex<HashMap<String, u64>>,
    asked: AtomicU64,
    served: AtomicU64,
    rejected: AtomicU64,
    queued: AtomicU64,
    in_service: AtomicU64,
}

/// The origin server; it stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// Starts the server on a free 127.0.0.1 port, on a thread of its own.
    pub fn start(opts: OriginOptions) -> io::Result<Origin> {
        if opts.workers == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an origin needs at least one worker"));
        }
        let state = Arc::new(State {
            latency: opts.latency,
            workers: opts.workers,
            pool: Semaphore::new(opts.workers),
            started: Instant::now(),
            gate: Mutex::new(opts.gate),
            values: Mutex::default(),
            missing: Mutex::default(),
            log: Mutex::default(),
            per_key: Mutex::default(),
            asked: AtomicU64::new(0),
            served: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            in_service: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let st = state.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("origin".into()).spawn(move || {
            rt.block_on(serve(std_listener, st, stop_rx));
        })?;
        Ok(Origin { addr, state, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`; a key is queried at `{url}/{key}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JSON body answered for `key` from now on.
    pub fn set_value(&self, key: &str, json: &str) {
        self.state.values.lock().unwrap().insert(key.to_string(), json.to_string());
    }

    /// Keys starting with `prefix` answer 404 (after the same service time as any query).
    pub fn set_missing(&self, prefix: &str) {
        self.state.missing.lock().unwrap().push(prefix.to_string());
    }

    pub fn set_gate(&self, gate: Option<Gate>) {
        *self.state.gate.lock().unwrap() = gate;
    }

    pub fn stats(&self) -> OriginStats {
        let s = &self.state;
        OriginStats {
            asked: s.asked.load(Relaxed),
            served: s.served.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            queued: s.queued.load(Relaxed),
            in_service: s.in_service.load(Relaxed),
        }
    }

    /// Queries received for `key` so far, rejected ones included.
    pub fn queries_for(&self, key: &str) -> u64 {
        self.state.per_key.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Every query received so far, in order.
    pub fn log(&self) -> Vec<Query> {
        self.state.log.lock().unwrap().clone()
    }

    /// Every query received so far, and forgets them (the counters stay).
    pub fn take_log(&self) -> Vec<Query> {
        std::mem::take(&mut *self.state.log.lock().unwrap())
    }

    /// The time since the origin started, the clock of [`Query::at`].
    pub fn elapsed(&self) -> Duration {
        self.state.started.elapsed()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>, mut stop: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // out of descriptors or a reset during accept: the next accept may work
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(answer(st, req.uri().path()).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // half_close: a client that sends its query and closes at once (gives up) still has
            // it read and served; without it, hyper drops a request read together with the
            // client's close before the service sees it, and the query is lost from the count
            let _ = hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(io, svc).await;
        });
    }
}

async fn answer(st: Arc<State>, path: &str) -> Response<Full<Bytes>> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    let key = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    st.asked.fetch_add(1, Relaxed);
    st.log.lock().unwrap().push(Query { at: st.started.elapsed(), key: key.clone() });
    *st.per_key.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
    if let Some(gate) = *st.gate.lock().unwrap() {
        let queued = st.queued.load(Relaxed);
        let wait = st.latency.mul_f64(queued as f64 / st.workers as f64);
        if wait > gate.max_wait || queued as usize > gate.max_queue {
            st.rejected.fetch_add(1, Relaxed);
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    // The query runs on a task of its own, so it holds its place in line and then a worker even
    // when the client gives up and hyper drops this future. It reads the value before it counts
    // itself served, so a lab that waits for the count and then changes the value knows which
    // value the query answers.
    let (tx, rx) = oneshot::channel();
    let task = st.clone();
    st.queued.fetch_add(1, Relaxed);
    tokio::spawn(async move {
        let permit = task.pool.acquire().await;
        task.queued.fetch_sub(1, Relaxed);
        task.in_service.fetch_add(1, Relaxed);
        tokio::time::sleep(task.latency).await;
        let body = if task.missing.lock().unwrap().iter().any(|p| key.starts_with(p.as_str())) {
            None
        } else {
            let held = task.values.lock().unwrap().get(&key).cloned();
            Some(held.unwrap_or_else(|| serde_json::Value::String(format!("{key}@origin")).to_string()))
        };
        drop(permit);
        task.in_service.fetch_sub(1, Relaxed);
        task.served.fetch_add(1, Relaxed);
        let _ = tx.send(body);
    });
    match rx.await {
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
        Ok(None) => status(StatusCode::NOT_FOUND),
        Ok(Some(body)) => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a static header is valid"),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder().status(code).body(Full::new(Bytes::new())).expect("an empty response is valid")
}
