# Python package: a venv in .venv, the test tools, the package built by maturin through
# pyproject.toml (`pip install .`), then pytest. Stamps skip what is already there; the package is
# rebuilt whenever the Rust or Python sources change.

TEST_SUITES += test-python

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
# msgpack, lz4 and xxhash: the independent reader of the wire vectors (tests/python/test_wire_vectors.py);
# redis: the peer of bench/l2_python.py; cashews: of bench/patterns_python.py.
PY_TOOLS := pytest==9.2.0 pytest-asyncio==1.5.0 cachetools==8.0.0 mypy==2.4.1 maturin==1.16.0 auditwheel==6.8.2 \
	msgpack==1.2.4 lz4==4.4.5 xxhash==4.1.0 redis==8.1.0 cashews==7.6.0
PY_DEPS_STAMP := $(VENV)/.healcache-tools
PY_PKG_STAMP := $(VENV)/.healcache-package
# every crate the extension links (the shared tier's too), and the package
PY_PKG_SOURCES := $(shell find core/src http/src redis/src rt/src bindings-python/src python -type f -not -name '*.pyc' 2>/dev/null) \
	core/Cargo.toml http/Cargo.toml redis/Cargo.toml rt/Cargo.toml bindings-python/Cargo.toml Cargo.toml Cargo.lock pyproject.toml

.PHONY: test-python bench-python python-package wheel test-wheel

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(PY_DEPS_STAMP): $(VENV_PY) mk/python.mk
	$(VENV_PY) -m pip install --disable-pip-version-check -q $(PY_TOOLS)
	touch $@

# maturin (installed above; its PEP 517 hook runs the `maturin` binary from PATH) builds the abi3
# wheel in release mode; no build isolation, so nothing is fetched again on a rebuild.
# CARGO_TARGET_DIR is honoured when set.
$(PY_PKG_STAMP): $(PY_DEPS_STAMP) $(PY_PKG_SOURCES)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV_PY) -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps --force-reinstall .
	touch $@

python-package: $(PY_PKG_STAMP)

test-python: $(PY_PKG_STAMP)
	$(VENV_PY) -m pytest tests/python -q

# Not part of `make test`: timings vary with the machine; the script prints the bars, never asserts them.
bench-python: $(PY_PKG_STAMP)
	$(VENV_PY) bench/python_bench.py

# The wheel pip users get: abi3 (one wheel for CPython 3.9+), manylinux, built by maturin with the
# settings of pyproject.toml, into target/wheelhouse. manylinux_2_34: the oldest glibc whose symbols
# a build on this machine may use (maturin refuses the wheel if it needs a newer one; auditwheel
# in test-wheel checks the tag). An older tag needs an older glibc to build on, such as a
# manylinux container, or `make wheel WHEEL_COMPAT=manylinux2014 MATURIN_FLAGS=--zig` with ziglang.
WHEEL_DIR := target/wheelhouse
WHEEL_COMPAT ?= manylinux_2_34
MATURIN_FLAGS ?=

wheel: $(PY_DEPS_STAMP)
	rm -f $(WHEEL_DIR)/healcache-*.whl
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --compatibility $(WHEEL_COMPAT) $(MATURIN_FLAGS) --out $(WHEEL_DIR)

# Installs the wheel into a fresh venv with no Rust toolchain on PATH and runs an example.
TEST_SUITES += test-wheel
test-wheel: wheel
	HEALCACHE_WHEEL_DIR=$(WHEEL_DIR) $(VENV_PY) -m pytest tests/package/test_wheel.py -q -p no:cacheprovider
