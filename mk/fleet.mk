# The polyglot fleet: a Rust, a Python and a Node instance on one real redis-server.
# `make test-polyglot` (part of `make test`) checks that each reads what the others wrote and drops
# its copies when another writes or deletes; `make fleet-demo` (not part of `make test`) runs one
# HTTP service per language over a shared slow origin and prints what the fleet did.
# This file is read before node.mk and python.mk: it names their targets, not their variables.
TEST_SUITES += test-polyglot

.PHONY: build-polyglot test-polyglot fleet-demo

build-polyglot:
	$(CARGO) build -p healcache-redis --release --example polyglot_node --example fleet_service

test-polyglot: python-package build-node build-polyglot build-testkit
	$(VENV_PY) -m pytest tests/polyglot -q -p no:cacheprovider

fleet-demo: python-package build-node build-polyglot build-testkit
	$(VENV_PY) tests/polyglot/fleet_demo.py
