# The shared tier on Redis (healcache-redis, healcache-rt): `make test-redis` runs its Rust tests
# against real redis-server processes (installed by .ci/setup-server.sh); the Python suite also
# uses `l2_get`, a small Rust reader of the shared tier, and `fleet_node`, one instance of a fleet
# driven on stdin, for its cross-language checks.
TEST_SUITES += test-redis

.PHONY: test-redis build-l2-tools

test-redis:
	$(CARGO) test -p healcache-rt -p healcache-redis --release

build-l2-tools:
	$(CARGO) build -p healcache-redis --release --example l2_get --example fleet_node

test-python: build-l2-tools

# Not part of `make test`: L2 hits beside their peers, interleaved rounds in one run, ratios printed.
.PHONY: bench-l2 bench-l2-node bench-l2-python
bench-l2:
	$(CARGO) bench -p healcache-redis --bench l2_hit
	$(CARGO) bench -p healcache-redis --bench fleet

bench-l2-node: build-node bench/peers/node_modules/.stamp
	$(NODE) bench/l2_node.mjs
	$(NODE) bench/patterns_node.mjs

# Peers whose dependencies clash with the project's (bentocache 1.6 wants ioredis 5), in a
# directory of their own; used by the benches only.
bench/peers/node_modules/.stamp: bench/peers/package.json bench/peers/package-lock.json
	cd bench/peers && npm ci --no-audit --no-fund
	touch $@

bench-l2-python: python-package
	$(VENV_PY) bench/l2_python.py
	$(VENV_PY) bench/patterns_python.py

# The fleet checks at full length against real redis-server processes, every figure printed:
# rebuilds per TTL boundary with 4 instance processes (about 28 boundaries a run), fencing,
# SIGKILL and SIGSTOP of a lock holder, a cut bus link, tags, fleet-wide healing with 1 and 4
# processes, invalidation latency, then the
# fleet bench. Not part of `make test`, which runs the same tests shorter.
.PHONY: fleet-checks
fleet-checks:
	HEALCACHE_FLEET_LAB=1 $(CARGO) test -p healcache-redis --release --test fleet_processes --test fleet_lock \
		--test bus --test outage --test tags --test fleet_healing -- --nocapture --test-threads 1
	$(CARGO) bench -p healcache-redis --bench fleet
