# The fleet stampede lab: `make lab`'s table across a fleet of instance processes (Rust, and in one
# row Python and Node too) on one real redis-server, with an origin HTTP server that saturates
# like a database, one row per protection layer, then the fencing scenario. `make fleet-lab`
# prints the stampede tables (about a minute), then the metastable table (mk/dashboard.mk, about
# 5 minutes), writes $(LAB_DIR)/stampede.csv, summary.json and metastable.csv, and draws the
# dashboard from them ($(LAB_DIR)/dashboard.html and .png); `make test-fleet-lab` (part of `make test`) runs it for 3 TTL windows and asserts
# its counts, never its timings. More options: `make fleet-lab FLEET_LAB_ARGS="--windows 20"`
# (see redis/examples/fleet_lab.rs).
# This file is read before node.mk, python.mk and redis.mk: it names their targets, and their
# variables only in recipes.
TEST_SUITES += test-fleet-lab

FLEET_LAB_ARGS ?=
FLEET_LAB_BIN = $(or $(CARGO_TARGET_DIR),target)/release/examples/fleet_lab

.PHONY: build-fleet-lab fleet-stampede test-fleet-lab fleet-lab

build-fleet-lab:
	$(CARGO) build -p healcache-redis --release --example fleet_lab --example lab_instance

fleet-stampede: python-package build-node build-testkit build-fleet-lab
	HEALCACHE_PYTHON=$(abspath $(VENV_PY)) NODE=$(NODE) $(FLEET_LAB_BIN) --out $(LAB_DIR) $(FLEET_LAB_ARGS)

# one after the other: each row needs the machine to itself
fleet-lab:
	$(MAKE) --no-print-directory fleet-stampede
	$(MAKE) --no-print-directory metastable
	$(MAKE) --no-print-directory dashboard

test-fleet-lab: python-package build-node build-testkit build-fleet-lab
	HEALCACHE_PYTHON=$(abspath $(VENV_PY)) NODE=$(NODE) $(CARGO) test -p healcache-redis --release --test fleet_lab -- --include-ignored
