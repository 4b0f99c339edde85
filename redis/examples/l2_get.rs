//! Reads keys through the shared tier only (the loader fails), and prints each value as JSON,
//! one per line: what another process, in any language, wrote. Also writes `--set key=json`
//! pairs first. Used by the cross-language tests; handy to look into a fleet's L2.
//!
//! `cargo run -p healcache-redis --example l2_get -- redis://127.0.0.1:6379 [--set k=json]... key...`

use healcache::tier::MsgPack;
use healcache::Cache;
use healcache_rt::{IoSpawner, IoTimer};
use serde_json::Value;

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: l2_get <redis url> [--set key=json]... key...");
    let cache: Cache<Value> = Cache::builder()
        .timer(IoTimer)
        .spawner(IoSpawner)
        .shared_tier(healcache_redis::RedisTransport::connect(&url).expect("a redis:// URL"), MsgPack::new())
        .build()
        .expect("a cache");
    let mut keys = Vec::new();
    while let Some(a) = args.next() {
        if a == "--set" {
            let pair = args.next().expect("--set key=json");
            let (k, v) = pair.split_once('=').expect("--set key=json");
            cache.set(k, serde_json::from_str(v).expect("JSON")).expect("set");
        } else {
            keys.push(a);
        }
    }
    let writes = cache.stats().l2_writes;
    let want = cache.stats().inserts;
    // writes are queued: wait until each has landed before reading or exiting
    for _ in 0..500 {
        if cache.stats().l2_writes >= want.max(writes) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for k in keys {
        let got = futures::executor::block_on(
            cache.get_or_load(&k, || async { Err::<Value, _>(std::io::Error::other("not in the shared tier")) }),
        );
        match got {
            Ok(v) => println!("{v}"),
            Err(e) => println!("error: {}", e.code()),
        }
    }
}
