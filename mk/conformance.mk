# The conformance suite: the scenarios of tests/conformance/*.json on every surface (Rust,
# Python, Node, WASM, and the web build under workerd and Deno), then the check that README.md's feature matrix is the one their results
# give (tests/conformance/matrix.py). Runs after the Python package, the Node addon and the wasm
# are built (their targets in mk/python.mk, mk/node.mk, mk/wasm.mk). `make conformance`.
TEST_SUITES += conformance

.PHONY: conformance conformance-matrix

conformance: python-package build-node build-wasm
	rm -rf target/conformance
	$(CARGO) test -p healcache --release --test conformance
	$(VENV_PY) -m pytest tests/python/test_conformance.py -q -p no:cacheprovider
	$(NODE) --test --test-timeout=120000 tests/js/conformance.test.mjs
	TEST_WASM=1 $(NODE) --test --test-timeout=120000 tests/js/conformance.test.mjs
	$(NODE) --test --test-timeout=300000 tests/edge/conformance_edge.mjs
	$(VENV_PY) tests/conformance/matrix.py --check

# Rewrites the README's matrix from the last results (after a scenario or a surface changed).
conformance-matrix:
	$(VENV_PY) tests/conformance/matrix.py --write
