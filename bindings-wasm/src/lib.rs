//! wasm binding of healcache (filled in by its issue).
