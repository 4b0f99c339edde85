# The metastable failure and the fleet lab's dashboard.
# - `make metastable` (not part of `make test`: about 5 minutes) runs the metastable failure, row by
#   row, on a real redis-server and a saturating origin; prints the table and writes
#   $(LAB_DIR)/metastable.csv.
# - `make dashboard` draws $(LAB_DIR)/dashboard.html from the CSV files there (stampede.csv from
#   `make fleet-lab`, metastable.csv from `make metastable`; either may be missing) and a screenshot
#   of it in headless Chromium ($(LAB_DIR)/dashboard.png).
# - `make test-dashboard` (part of `make test`): the generator's tests, in a real browser. The
#   short metastable run whose states and counts are checked is redis/tests/metastable.rs, run
#   with the other shared-tier tests by `make test-redis`.
# This file is read before python.mk: its prerequisites name none of python.mk's variables.
TEST_SUITES += test-dashboard

LAB_DIR ?= target/lab
METASTABLE_ARGS ?=
METASTABLE_BIN = $(or $(CARGO_TARGET_DIR),target)/release/examples/metastable
CHROMIUM ?= chromium
CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars

.PHONY: metastable dashboard test-dashboard build-metastable

build-metastable:
	$(CARGO) build -p healcache-redis --release --example metastable

metastable: build-metastable
	@command -v redis-server >/dev/null || bash .ci/setup-server.sh
	mkdir -p $(LAB_DIR)
	$(METASTABLE_BIN) --out $(LAB_DIR) $(METASTABLE_ARGS)

dashboard:
	@command -v $(CHROMIUM) >/dev/null || bash .ci/setup-dashboard.sh
	mkdir -p $(LAB_DIR)
	python3 ops/dashboard/dashboard.py $(LAB_DIR) --trigger-s 10
	profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && \
		$(CHROMIUM) $(CHROMIUM_FLAGS) --user-data-dir="$$profile" --window-size=1280,2600 \
		--screenshot=$(abspath $(LAB_DIR))/dashboard.png file://$(abspath $(LAB_DIR))/dashboard.html 2>/dev/null
	@echo "dashboard: $(LAB_DIR)/dashboard.html, $(LAB_DIR)/dashboard.png"

# The venv's test tools through python.mk's stamp, named in the recipe (expanded when it runs).
test-dashboard:
	@command -v $(CHROMIUM) >/dev/null || bash .ci/setup-dashboard.sh
	@command -v redis-server >/dev/null || bash .ci/setup-server.sh
	$(MAKE) --no-print-directory $(PY_DEPS_STAMP)
	$(VENV_PY) -m pytest tests/dashboard -q -p no:cacheprovider
