//! `healcache-server --port 6380 [--bind 127.0.0.1] [--requirepass PW] [--config file.json]
//! [--metrics-port P] [--source-allow host,...]`

fn main() {
    let settings = match healcache_server::from_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("healcache-server: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = healcache_server::run(settings) {
        eprintln!("healcache-server: {e}");
        std::process::exit(1);
    }
}
