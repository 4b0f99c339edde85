# healcache: `make demo` runs the main job, `make test` runs every suite. Both install what is
# missing first (Rust targets, a Python venv, npm packages), so a fresh machine needs nothing else.
# Each language adds its targets in mk/<lang>.mk: it appends its suite to TEST_SUITES.

SHELL := /bin/bash
.DEFAULT_GOAL := test
CARGO ?= cargo
TEST_SUITES := test-rust

-include mk/*.mk

.PHONY: test demo test-rust lint bench lab fmt bench-hit-ratio bench-read-scale bench-memory
test: $(TEST_SUITES)
	@echo "make test: all suites passed ($(TEST_SUITES))"

test-rust:
	@rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	$(CARGO) test -p healcache -p healcache-http -p healcache-js-common --profile checked
	$(CARGO) test -p healcache --profile checked --features shuttle --test shuttle
	$(CARGO) build -p healcache --release --target wasm32-unknown-unknown

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p healcache --features shuttle --tests -- -D warnings

fmt:
	$(CARGO) fmt --all

demo:
	$(CARGO) run -p healcache --release --example demo

# The stampede lab: one row per protection layer, the same load for each (prints a table).
lab:
	$(CARGO) run -p healcache --release --example lab

bench:
	$(CARGO) bench -p healcache

# Hit ratio against moka and quick_cache on a Zipf 0.99 trace (prints a table).
bench-hit-ratio:
	$(CARGO) bench -p healcache --bench hit_ratio

# Read throughput at 1, 2 and all threads beside quick_cache, moka and sharded maps (prints a table;
# READ_SCALE_GETS and READ_SCALE_ROUNDS change the gets per thread and the rounds).
bench-read-scale:
	$(CARGO) bench -p healcache --bench read_scale

# Heap bytes per entry beside quick_cache, moka and a hashbrown map, by a counting allocator
# (prints a table).
bench-memory:
	$(CARGO) bench -p healcache --bench memory
