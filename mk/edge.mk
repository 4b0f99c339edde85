# The WebAssembly package under real edge runtimes (tests/edge): workerd and Deno, both from npm
# (devDependencies), each started on 127.0.0.1 by the tests and stopped by its pid.
TEST_SUITES += test-edge

.PHONY: test-edge

# (targets by name: this file is read before wasm.mk, which defines the variables)
# each test starts its runtimes: a loaded 2-core machine may take a minute for one
# dist/healcache.node: the wire module's test writes the fleet's entries with the Node package
test-edge: build-wasm dist/healcache.node
	$(NODE) --test --test-timeout=180000 tests/edge/
