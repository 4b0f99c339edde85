'use strict';
// The name of this machine's platform package, `@healcache/<platform>-<arch>[-<abi>]`, as napi-rs
// names them (npm/<triple>/package.json): Linux splits by C library, Windows by toolchain.

/** `<platform>-<arch>[-<abi>]` of this process. */
function platformTriple() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    // Node reports the glibc it runs on; musl systems (Alpine) report none.
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

module.exports = { platformTriple };
