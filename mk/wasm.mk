# WebAssembly package (wasm-bindgen --target web and --target nodejs, wasm-opt from npm binaryen):
# `make test-wasm` runs the JS suite against it (TEST_WASM=1), `make bench-wasm`.
# js/build.mjs adds the wasm32 target and installs the wasm-bindgen-cli matching Cargo.lock
# when `wasm-bindgen --version` does not already match.
TEST_SUITES += test-wasm

WASM_PKG := bindings-wasm/pkg-node/healcache_wasm_bg.wasm
# the cache's module, and the opt-in wire module built beside it
WASM_RUST_SRC := $(shell find core/src bindings-wasm/src js-common/src wasm-wire/src -name '*.rs') core/Cargo.toml bindings-wasm/Cargo.toml \
	js-common/Cargo.toml wasm-wire/Cargo.toml Cargo.toml Cargo.lock js/build.mjs

.PHONY: build-wasm test-wasm bench-wasm

$(WASM_PKG): $(NODE_DEPS) $(WASM_RUST_SRC) $(JS_SHARED)
	$(NODE) js/build.mjs wasm

build-wasm: $(WASM_PKG)

# The core as the module builds it (no `tier` feature) refuses a shared tier: core/tests/without_tier.rs.
test-wasm: $(WASM_PKG) $(NODE_ADDON)
	cargo test -p healcache --release --no-default-features --test without_tier
	TEST_WASM=1 $(NODE) --test --test-timeout=120000 tests/js/*.test.mjs

bench-wasm: $(WASM_PKG)
	$(NODE) bench/wasm_bench.mjs
