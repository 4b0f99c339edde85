# The real-parts test kit (testkit/, crate healcache-testkit): redis-server children and the TCP
# fault proxy that the shared-tier suites use from Rust, Python and Node. `make test-testkit` runs
# its self-tests in all three. redis-server comes from Debian (.ci/setup-server.sh); the Python and
# Node helpers find the proxy binary at $(CARGO_TARGET_DIR or target)/release/healcache-faultproxy.
TEST_SUITES += test-testkit

.PHONY: test-testkit build-testkit

build-testkit:
	@command -v redis-server >/dev/null || bash .ci/setup-server.sh
	$(CARGO) build -p healcache-testkit --release --bins

test-testkit: build-testkit $(PY_DEPS_STAMP)
	$(CARGO) test -p healcache-testkit --release
	$(VENV_PY) -m pytest tests/python/test_rediskit.py -q -p no:cacheprovider
	$(or $(NODE),node) --test --test-timeout=120000 tests/js/rediskit.test.mjs

# The Python and JS suites collect the kit's tests too (and the shared-tier tests use the kit):
# the proxy binary and redis-server must be there first.
test-python test-node test-wasm: build-testkit
