# npm tarballs in the napi-rs layout: `make package` writes target/package/healcache-<version>.tgz
# (JS, typings, the WebAssembly build; optionalDependencies on the platform packages) and
# healcache-<platform>-<version>.tgz (this machine's native addon, with os/cpu/libc), see
# npm/pack.mjs. `make test-package` installs them into empty projects offline (tests/package).
# The addon and the WebAssembly build come from the rules of mk/node.mk and mk/wasm.mk.
TEST_SUITES += test-package
PACKAGE_DIR := target/package

.PHONY: package test-package

package: dist/healcache.node bindings-wasm/pkg-node/healcache_wasm_bg.wasm
	$(NODE) npm/pack.mjs $(PACKAGE_DIR)

test-package: package
	HEALCACHE_PACKAGE_DIR=$(PACKAGE_DIR) $(NODE) --test --test-timeout=300000 tests/package/
