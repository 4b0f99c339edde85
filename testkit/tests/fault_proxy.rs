//! The fault proxy in front of a real redis-server. Timing assertions are lower bounds only (an
//! injected delay must be seen at least once); nothing asserts how fast anything is.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use healcache_testkit::resp::{Reply, RespConn};
use healcache_testkit::{Direction, FaultProxy, Faults, RedisServer};

fn conn(addr: SocketAddr) -> RespConn {
    RespConn::connect(addr, Duration::from_secs(10)).unwrap()
}

fn pong(c: &mut RespConn) {
    assert_eq!(c.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}

fn setup() -> (RedisServer, FaultProxy) {
    let redis = RedisServer::start().unwrap();
    let proxy = FaultProxy::start(redis.addr()).unwrap();
    (redis, proxy)
}

/// A connection to `addr` is reset (at connect, when the RST wins the race, or at the first read) or
/// closed without a byte of data.
fn assert_reset_or_closed(addr: SocketAddr) {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => assert_eq!(n, 0, "got data"),
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[test]
fn forwards_commands_and_counts_connections() {
    let (redis, proxy) = setup();
    assert_eq!(proxy.upstream(), redis.addr());
    assert!(proxy.addr().ip().is_loopback());
    assert_ne!(proxy.addr(), redis.addr());
    let mut a = conn(proxy.addr());
    pong(&mut a);
    let mut b = conn(proxy.addr());
    assert_eq!(b.cmd(&["SET", "k", "v"]).unwrap(), Reply::Simple("OK".into()));
    assert_eq!(a.cmd(&["GET", "k"]).unwrap(), Reply::Bulk(Some(b"v".to_vec())));
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.active(), 2);
    drop(a);
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.active() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(proxy.active(), 0, "closed connections are no longer active");
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn refuses_an_upstream_off_loopback() {
    for up in ["10.0.0.1:6379", "192.168.1.1:6379", "[2001:db8::1]:6379"] {
        let e = FaultProxy::start(up.parse().unwrap()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{up}");
    }
}

#[test]
fn latency_delays_each_round_trip() {
    let (_redis, proxy) = setup();
    let mut c = conn(proxy.addr());
    pong(&mut c);
    proxy.set(Faults { latency: Duration::from_millis(150), ..Default::default() });
    let t = Instant::now();
    pong(&mut c);
    // 150 ms each way.
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    proxy.set_dir(Direction::Downstream, Faults::default());
    let t = Instant::now();
    pong(&mut c);
    assert!(t.elapsed() >= Duration::from_millis(150), "{:?}", t.elapsed());
    assert_eq!(proxy.faults()[0].latency, Duration::from_millis(150));
    assert_eq!(proxy.faults()[1], Faults::default());
}

#[test]
fn jitter_keeps_replies_in_order() {
    let (_redis, proxy) = setup();
    proxy.set(Faults { latency: Duration::from_millis(1), jitter: Duration::from_millis(20), ..Default::default() });
    let mut c = conn(proxy.addr());
    for i in 0..100 {
        c.send(&["ECHO", &format!("m{i}")]).unwrap();
    }
    for i in 0..100 {
        assert_eq!(c.read_reply().unwrap(), Reply::Bulk(Some(format!("m{i}").into_bytes())));
    }
}

#[test]
fn blackhole_makes_reads_time_out_and_clears() {
    let (redis, proxy) = setup();
    let mut c = conn(proxy.addr());
    pong(&mut c);
    proxy.set_dir(Direction::Downstream, Faults { blackhole: true, ..Default::default() });
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    // The request still reaches Redis (only replies are dropped) ...
    c.send(&["SET", "bh", "1"]).unwrap();
    assert!(timed_out(&c.read_reply().unwrap_err()));
    let mut direct = conn(redis.addr());
    let deadline = Instant::now() + Duration::from_secs(5);
    while direct.cmd(&["GET", "bh"]).unwrap() != Reply::Bulk(Some(b"1".to_vec())) {
        assert!(Instant::now() < deadline, "the SET never reached redis");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ... and the connection stays open.
    assert_eq!(proxy.active(), 1);
    // Upstream blackhole: requests are dropped before Redis.
    proxy.set_dir(Direction::Upstream, Faults { blackhole: true, ..Default::default() });
    proxy.set_dir(Direction::Downstream, Faults::default());
    let mut d = conn(proxy.addr());
    d.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    d.send(&["SET", "bh2", "1"]).unwrap();
    assert!(timed_out(&d.read_reply().unwrap_err()));
    assert_eq!(direct.cmd(&["GET", "bh2"]).unwrap(), Reply::Bulk(None));
    proxy.clear();
    pong(&mut conn(proxy.addr()));
}

#[test]
fn one_byte_slicing_still_delivers_correct_replies() {
    let (_redis, proxy) = setup();
    proxy.set(Faults { slice_1byte: true, ..Default::default() });
    let mut c = conn(proxy.addr());
    let value: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(c.cmd(&[b"SET".as_slice(), b"v", &value]).unwrap(), Reply::Simple("OK".into()));
    for i in 0..20 {
        c.send(&["ECHO", &format!("r{i}")]).unwrap();
    }
    c.send(&["GET", "v"]).unwrap();
    for i in 0..20 {
        assert_eq!(c.read_reply().unwrap(), Reply::Bulk(Some(format!("r{i}").into_bytes())));
    }
    assert_eq!(c.read_reply().unwrap(), Reply::Bulk(Some(value)));
}

#[test]
fn one_byte_slicing_cuts_replies_into_separate_writes() {
    let (_redis, proxy) = setup();
    // Paced at 2000 B/s so the bytes are about 0.5 ms apart: a waiting reader sees the first one alone
    // even on a busy machine. (Pacing alone would write 40-byte pieces.)
    let faults = Faults { slice_1byte: true, bytes_per_sec: Some(2000), ..Default::default() };
    proxy.set_dir(Direction::Downstream, faults);
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let msg = "x".repeat(64);
    let mut first_reads = Vec::new();
    for _ in 0..10 {
        s.write_all(&healcache_testkit::resp::encode(&["ECHO", &msg])).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        first_reads.push(n);
        let mut got = n;
        while got < 64 + 5 {
            got += s.read(&mut buf).unwrap();
        }
    }
    assert!(first_reads.contains(&1), "first reads {first_reads:?}");
}

#[test]
fn data_limit_closes_after_exactly_n_bytes() {
    let (redis, proxy) = setup();
    proxy.set_dir(Direction::Downstream, Faults { data_limit: Some(10), ..Default::default() });
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Two PINGs answer 14 bytes; the proxy passes 10 and closes.
    s.write_all(b"PING\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+PONG\r\n+PO");
    // Exactly the limit: the connection closes after the 7th byte.
    proxy.set_dir(Direction::Downstream, Faults { data_limit: Some(7), ..Default::default() });
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+PONG\r\n");
    // Upstream limit: Redis gets only the first 8 bytes (one INCR), then the connection closes.
    proxy.set_dir(Direction::Downstream, Faults::default());
    proxy.set_dir(Direction::Upstream, Faults { data_limit: Some(8), ..Default::default() });
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"INCR c\r\nINCR c\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got == b":1\r\n" || got.is_empty(), "{got:?}");
    let mut direct = conn(redis.addr());
    let deadline = Instant::now() + Duration::from_secs(5);
    while direct.cmd(&["GET", "c"]).unwrap() == Reply::Bulk(None) {
        assert!(Instant::now() < deadline, "the first INCR never reached redis");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(direct.cmd(&["GET", "c"]).unwrap(), Reply::Bulk(Some(b"1".to_vec())));
}

#[test]
fn reset_all_makes_the_client_see_a_reset() {
    let (_redis, proxy) = setup();
    let mut c = conn(proxy.addr());
    pong(&mut c);
    proxy.reset_all();
    let e = c.read_reply().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    // New connections are not affected.
    pong(&mut conn(proxy.addr()));
    assert_eq!(proxy.refused(), 0);
}

#[test]
fn refuse_resets_new_connections_until_cleared() {
    let (_redis, proxy) = setup();
    let mut open = conn(proxy.addr());
    pong(&mut open);
    proxy.set_dir(Direction::Upstream, Faults { refuse: true, ..Default::default() });
    assert_reset_or_closed(proxy.addr());
    assert_eq!(proxy.refused(), 1);
    // Connections open before the refusal keep working.
    pong(&mut open);
    proxy.clear();
    pong(&mut conn(proxy.addr()));
    assert_eq!(proxy.connections(), 3);
}

#[test]
fn an_upstream_that_is_down_resets_the_client() {
    let (mut redis, proxy) = setup();
    redis.kill();
    assert_reset_or_closed(proxy.addr());
    redis.restart().unwrap();
    pong(&mut conn(proxy.addr()));
}

#[test]
fn bandwidth_limit_slows_a_1mb_transfer() {
    let (redis, proxy) = setup();
    let value = vec![b'b'; 1 << 20];
    assert_eq!(conn(redis.addr()).cmd(&[b"SET".as_slice(), b"big", &value]).unwrap(), Reply::Simple("OK".into()));
    let mut c = conn(proxy.addr());
    let t = Instant::now();
    assert_eq!(c.cmd(&["GET", "big"]).unwrap(), Reply::Bulk(Some(value.clone())));
    let free = t.elapsed();
    proxy.set_dir(Direction::Downstream, Faults { bytes_per_sec: Some(512 * 1024), ..Default::default() });
    let t = Instant::now();
    assert_eq!(c.cmd(&["GET", "big"]).unwrap(), Reply::Bulk(Some(value)));
    // 1 MiB at 512 KiB/s is 2 s; require at least half of that.
    assert!(t.elapsed() >= Duration::from_secs(1), "limited {:?}, free {free:?}", t.elapsed());
}

#[test]
fn zero_bandwidth_holds_data_until_lifted() {
    let (_redis, proxy) = setup();
    let mut c = conn(proxy.addr());
    proxy.set_dir(Direction::Downstream, Faults { bytes_per_sec: Some(0), ..Default::default() });
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send(&["PING"]).unwrap();
    assert!(timed_out(&c.read_reply().unwrap_err()));
    proxy.clear();
    c.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Held, not dropped: the reply arrives once the limit is lifted.
    assert_eq!(c.read_reply().unwrap(), Reply::Simple("PONG".into()));
}

#[tokio::test(flavor = "current_thread")]
async fn works_from_inside_another_runtime() {
    let redis = RedisServer::start().unwrap();
    let proxy = FaultProxy::start(redis.addr()).unwrap();
    proxy.set(Faults { latency: Duration::from_millis(20), ..Default::default() });
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    // Dropping the proxy inside a runtime must not panic (its runtime lives on its own thread).
    drop(proxy);
}

#[test]
fn dropping_the_proxy_closes_its_connections_and_port() {
    let (_redis, proxy) = setup();
    let addr = proxy.addr();
    let mut c = conn(addr);
    pong(&mut c);
    drop(proxy);
    assert!(c.cmd(&["PING"]).is_err());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_reset_from_the_upstream_reaches_the_client_as_a_reset() {
    // A plain loopback listener as the upstream, so the test controls when it resets.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = FaultProxy::start(upstream.local_addr().unwrap()).unwrap();
    let mut client = TcpStream::connect(proxy.addr()).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(b"hello").unwrap();
    let (mut peer, _) = upstream.accept().unwrap();
    let mut buf = [0u8; 5];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    socket_rst(peer);
    let e = client.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
}

/// Closes a std socket with RST (SO_LINGER 0), through tokio's safe setter.
fn socket_rst(s: TcpStream) {
    s.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let t = tokio::net::TcpStream::from_std(s).unwrap();
        t.set_zero_linger().unwrap();
    });
}

#[test]
fn a_half_close_is_passed_on_and_the_reply_still_arrives() {
    let (_redis, proxy) = setup();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+PONG\r\n");
}

#[test]
fn the_kit_types_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FaultProxy>();
    send_sync::<RedisServer>();
    send_sync::<Faults>();
}

#[test]
fn one_connection_can_be_faulted_alone() {
    let (_redis, proxy) = setup();
    let mut data = conn(proxy.addr());
    pong(&mut data);
    let mut bus = conn(proxy.addr());
    assert_eq!(bus.cmd(&["SUBSCRIBE", "inval"]).unwrap(), {
        let b = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        Reply::Array(Some(vec![b("subscribe"), b("inval"), Reply::Int(1)]))
    });
    let open = proxy.open_connections();
    assert_eq!(open.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(open[0].first_bytes, b"*1\r\n$4\r\nPING\r\n");
    let bus_id = open.iter().find(|c| c.first_bytes.windows(9).any(|w| w == b"SUBSCRIBE")).unwrap().id;
    assert_eq!(bus_id, 2);
    assert_eq!(open[0].bytes_down, 7);
    assert!(open[1].bytes_up > 0 && open[1].bytes_down > 0);

    // Blackhole the bus link only: a PUBLISH on the data link no longer reaches the subscriber.
    assert!(proxy.set_conn(bus_id, Direction::Downstream, Faults { blackhole: true, ..Default::default() }));
    assert_eq!(data.cmd(&["PUBLISH", "inval", "k1"]).unwrap(), Reply::Int(1));
    bus.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(timed_out(&bus.read_reply().unwrap_err()));
    pong(&mut data);
    // Proxy-wide faults no longer apply to the overridden direction.
    proxy.set(Faults { latency: Duration::from_millis(100), ..Default::default() });
    assert!(timed_out(&bus.read_reply().unwrap_err()));

    // Reset one connection: the other stays up.
    proxy.clear();
    assert!(proxy.reset_conn(1));
    assert_eq!(data.read_reply().unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.open_connections().len() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!proxy.reset_conn(1), "no longer open");
    assert!(!proxy.set_conn(1, Direction::Both, Faults::default()));
    assert!(!proxy.set_conn(99, Direction::Both, Faults::default()));
    assert_eq!(proxy.open_connections()[0].id, 2);
}

#[test]
fn first_bytes_are_kept_up_to_the_bound() {
    let (_redis, proxy) = setup();
    let mut c = conn(proxy.addr());
    let msg = "m".repeat(400);
    c.cmd(&["ECHO", &msg]).unwrap();
    let info = &proxy.open_connections()[0];
    assert_eq!(info.first_bytes.len(), healcache_testkit::FIRST_BYTES_KEPT);
    assert_eq!(
        &info.first_bytes[..],
        &healcache_testkit::resp::encode(&["ECHO", &msg])[..healcache_testkit::FIRST_BYTES_KEPT]
    );
}

#[test]
fn accept_times_keep_the_last_connections_up_to_the_bound() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = FaultProxy::start(upstream.local_addr().unwrap()).unwrap();
    proxy.set(Faults { refuse: true, ..Default::default() });
    let t0 = Instant::now();
    let n = healcache_testkit::ACCEPT_LOG_LEN + 1;
    for _ in 0..n {
        // Wait for each reset, so the accept queue never overflows (a dropped SYN is retried after 1 s).
        if let Ok(mut s) = TcpStream::connect(proxy.addr()) {
            let _ = s.read(&mut [0u8; 1]);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.connections() < n as u64 {
        assert!(Instant::now() < deadline, "{} accepted", proxy.connections());
        std::thread::sleep(Duration::from_millis(5));
    }
    let times = proxy.accept_times();
    assert_eq!(times.len(), healcache_testkit::ACCEPT_LOG_LEN);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(*times.last().unwrap() <= t0.elapsed() + Duration::from_secs(1));
    assert_eq!(proxy.refused(), n as u64);
}

#[test]
fn a_stalled_direction_stops_reading_instead_of_buffering() {
    // The upstream writes 128 MiB at a client whose direction is stalled: the proxy must stop reading
    // once its queue (64 chunks of 16 KiB) is full, so the upstream blocks after kernel buffers fill
    // (tens of MiB at most here), well before 128 MiB.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = FaultProxy::start(upstream.local_addr().unwrap()).unwrap();
    proxy.set_dir(Direction::Downstream, Faults { bytes_per_sec: Some(0), ..Default::default() });
    let _client = TcpStream::connect(proxy.addr()).unwrap();
    let (mut peer, _) = upstream.accept().unwrap();
    peer.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let (mut written, mut blocked_since) = (0usize, None::<Instant>);
    while written < 128 << 20 {
        match peer.write(&chunk) {
            Ok(n) => {
                written += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(written < 64 << 20, "the proxy took {written} bytes it could not forward");
    assert_eq!(proxy.open_connections()[0].bytes_down, 0);
}

#[test]
fn huge_delays_are_capped_not_a_crash() {
    let (_redis, proxy) = setup();
    proxy.set(Faults { latency: Duration::MAX, jitter: Duration::MAX, ..Default::default() });
    let mut c = conn(proxy.addr());
    c.stream().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    c.send(&["PING"]).unwrap();
    assert!(timed_out(&c.read_reply().unwrap_err()));
    // The connection task is alive (held, not panicked): clearing the faults does not release the
    // chunk already queued for an hour, but the connection stays open and counted.
    assert_eq!(proxy.active(), 1);
    proxy.clear();
    pong(&mut conn(proxy.addr()));
}
