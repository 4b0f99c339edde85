# healcache-server (RESP2/RESP3 over the core): `make test-server`, `make serve`, `make bench-server`.
# The Rust suites start the binary as a child on free loopback ports; redis-cli, redis-benchmark and
# redis-server come from Debian (.ci/setup-server.sh); redis-py goes into .venv, ioredis into
# server/tests/js/node_modules (its own lock file, not the root package.json).
TEST_SUITES += test-server

SERVER_BIN := target/release/healcache-server
SERVER_PY := .venv/bin/python
SERVER_PY_STAMP := .venv/.healcache-server-tools
SERVER_JS := server/tests/js
SERVER_JS_STAMP := $(SERVER_JS)/node_modules/.healcache-stamp
SERVER_PORT ?= 6380

.PHONY: test-server serve bench-server build-server

build-server:
	$(CARGO) build -p healcache-server --release

$(SERVER_PY_STAMP): mk/server.mk
	test -x $(SERVER_PY) || python3 -m venv .venv
	$(SERVER_PY) -m pip install --disable-pip-version-check -q redis==8.1.0 pytest==9.2.0
	touch $@

$(SERVER_JS_STAMP): $(SERVER_JS)/package.json $(SERVER_JS)/package-lock.json
	cd $(SERVER_JS) && $(or $(NPM),npm) ci --no-audit --no-fund
	touch $@

test-server: build-server $(SERVER_PY_STAMP) $(SERVER_JS_STAMP)
	@command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || bash .ci/setup-server.sh
	$(CARGO) test -p healcache-server --release
	HEALCACHE_SERVER_BIN=$(SERVER_BIN) $(SERVER_PY) -m pytest server/tests/python -q -p no:cacheprovider
	HEALCACHE_SERVER_BIN=$(SERVER_BIN) $(or $(NODE),node) --test server/tests/js/

# Listens on 127.0.0.1 only (pass ARGS="--requirepass ..." for more).
serve: build-server
	$(SERVER_BIN) --port $(SERVER_PORT) --bind 127.0.0.1 $(ARGS)

# Not part of `make test`: redis-benchmark against healcache-server and redis-server, alternating.
bench-server: build-server
	bash server/bench.sh
