# Node package (napi-rs addon + shared JS wrapper): `make test-node`, `make bench-node`.
# npm packages are installed from package-lock.json when node_modules is missing or stale (without
# the package's own prepare script: make builds the addon itself); the addon is rebuilt when Rust
# sources, the lock file or the JS wrapper change. Packaging: mk/package.mk.
TEST_SUITES += test-node
NPM ?= npm
NODE ?= node

NODE_DEPS := node_modules/.healcache-stamp
NODE_ADDON := dist/healcache.node
# every crate the addon links, at any depth (the core has module folders: tier/, codec/, store/)
NODE_RUST_SRC := $(shell find core/src bindings-node/src http/src js-common/src redis/src rt/src -name '*.rs') \
	core/Cargo.toml bindings-node/Cargo.toml http/Cargo.toml js-common/Cargo.toml redis/Cargo.toml rt/Cargo.toml \
	bindings-node/build.rs Cargo.lock
JS_SHARED := $(wildcard js/*.mjs)

.PHONY: node-deps build-node test-node bench-node

$(NODE_DEPS): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --ignore-scripts
	@touch $@

node-deps: $(NODE_DEPS)

$(NODE_ADDON): $(NODE_DEPS) $(NODE_RUST_SRC) $(JS_SHARED)
	$(NODE) js/build.mjs node

build-node: $(NODE_ADDON)

# build-wasm: tests/js/wire.test.mjs reads entries with the opt-in wire module
test-node: $(NODE_ADDON) python-package build-l2-tools build-wasm
	$(NODE) --test --test-timeout=120000 tests/js/*.test.mjs

bench-node: $(NODE_ADDON)
	$(NODE) bench/node_bench.mjs
