// Builds the native addon (`node js/build.mjs node`) or the WebAssembly packages
// (`node js/build.mjs wasm`), and the CommonJS bundle of the shared wrapper (dist/cache.cjs).
// Respects CARGO_TARGET_DIR. Run by `npm run build` / `npm run build:wasm` and by mk/*.mk.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args, env) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
const out = (cmd, args) => execFileSync(cmd, args, { cwd: root, encoding: 'utf8' }).trim();

// The wrapper's ES modules, in dependency order, bundled into one CommonJS file: their imports
// of each other dropped, the last one's exports made `module.exports`.
const WRAPPER = ['js/options.mjs', 'js/mirror.mjs', 'js/healing.mjs', 'js/write_behind.mjs', 'js/cache.mjs'];

function cjs() {
  const exportLine = /^export \{([^}]*)\};\n?/m;
  let body = '';
  let exported = '';
  for (const file of WRAPPER) {
    let src = readFileSync(join(root, file), 'utf8').replace(/^import [^;]*? from '\.\/[^']+';\n/gm, '');
    const m = src.match(exportLine);
    if (!m) throw new Error(`${file}: expected one \`export { ... };\` statement`);
    src = src.replace(m[0], '');
    exported = m[1];
    body += `// ---- ${file} ----\n${src}\n`;
  }
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(
    join(root, 'dist/cache.cjs'),
    `'use strict';\n// Generated from ${WRAPPER.join(', ')} by js/build.mjs: edit those files.\n${body}module.exports = {${exported}};\n`,
  );
}

function targetDir() {
  const meta = JSON.parse(out('cargo', ['metadata', '--format-version', '1', '--no-deps']));
  return meta.target_directory;
}

function buildNode() {
  run('cargo', ['build', '-p', 'healcache-node', '--release']);
  const lib = { linux: 'libhealcache_node.so', darwin: 'libhealcache_node.dylib', win32: 'healcache_node.dll' }[process.platform];
  mkdirSync(join(root, 'dist'), { recursive: true });
  const dest = join(root, 'dist/healcache.node');
  copyFileSync(join(targetDir(), 'release', lib), dest);
  if (process.platform === 'linux') {
    try {
      run('strip', ['--strip-unneeded', dest]);
    } catch {
      // strip is optional
    }
  }
  console.log(`built ${dest} (${statSync(dest).size} bytes)`);
}

function wasmBindgenVersion() {
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
  const m = lock.match(/name = "wasm-bindgen"\nversion = "([^"]+)"/);
  if (!m) throw new Error('wasm-bindgen not found in Cargo.lock');
  return m[1];
}

function ensureWasmBindgen() {
  const want = wasmBindgenVersion();
  let have = '';
  try {
    have = out('wasm-bindgen', ['--version']);
  } catch {
    // not installed
  }
  if (have !== `wasm-bindgen ${want}`) {
    console.log(`installing wasm-bindgen-cli ${want} (found: ${have || 'none'})`);
    // not --locked: a dependency version the CLI's lock file pins is missing from the registry
    run('cargo', ['install', 'wasm-bindgen-cli', '--version', want]);
  }
}

// wasm-opt optimises as the profile does: -Oz for opt-level "z", -O3 for 3, and so on. Cargo's
// CARGO_PROFILE_WASM_OPT_LEVEL overrides both (to compare levels without editing Cargo.toml).
function wasmOptLevel() {
  let level = process.env.CARGO_PROFILE_WASM_OPT_LEVEL;
  if (!level) {
    const profile = readFileSync(join(root, 'Cargo.toml'), 'utf8').split('[profile.wasm]')[1] || '';
    const m = profile.match(/^opt-level = "?([0-3sz])"?/m);
    if (!m) throw new Error('Cargo.toml: [profile.wasm] needs an opt-level');
    level = m[1];
  }
  return `-O${level === '0' ? '1' : level}`;
}

function buildWasm() {
  const installed = out('rustup', ['target', 'list', '--installed']);
  if (!installed.split('\n').includes('wasm32-unknown-unknown')) run('rustup', ['target', 'add', 'wasm32-unknown-unknown']);
  ensureWasmBindgen();
  // The `wasm` profile of the workspace's Cargo.toml: its opt level, fat LTO, one codegen unit.
  // Panic locations name their files: with the checkout's and the crate registry's prefixes cut,
  // the module is the same wherever it is built, and it does not carry the builder's home path.
  const registry = join(process.env.CARGO_HOME || join(homedir(), '.cargo'), 'registry/src');
  const remaps = [`${root}/`, ...(existsSync(registry) ? readdirSync(registry).map((d) => `${registry}/${d}/`) : [])];
  const rustflags = [process.env.RUSTFLAGS || '', ...remaps.map((p) => `--remap-path-prefix=${p}=`)].join(' ').trim();
  // the cache's module, and the opt-in module of the fleet's wire format beside it
  for (const [pkg, crate, out] of [
    ['healcache-wasm', 'healcache_wasm', 'bindings-wasm/pkg'],
    ['healcache-wasm-wire', 'healcache_wasm_wire', 'wasm-wire/pkg'],
  ]) {
    run('cargo', ['build', '-p', pkg, '--profile', 'wasm', '--target', 'wasm32-unknown-unknown'], { RUSTFLAGS: rustflags });
    bindgen(join(targetDir(), `wasm32-unknown-unknown/wasm/${crate}.wasm`), crate, out);
  }
}

function bindgen(wasm, name, out) {
  const wasmOpt = join(root, 'node_modules/.bin/wasm-opt');
  if (!existsSync(wasmOpt)) throw new Error('node_modules/.bin/wasm-opt missing: run npm install (npm package binaryen)');
  for (const target of ['web', 'nodejs']) {
    const dir = join(root, `${out}-${target === 'web' ? 'web' : 'node'}`);
    run('wasm-bindgen', ['--target', target, '--out-dir', dir, '--out-name', name, wasm]);
    // the web glue is an ES module in a .js file: say so, or Node re-parses it with a warning
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: target === 'web' ? 'module' : 'commonjs' }) + '\n');
    const bg = join(dir, `${name}_bg.wasm`);
    // --converge: repeat the passes while they still shrink the module (about 180 bytes here)
    // --low-memory-unused: lets loads and stores fold a constant into their offset, which differs
    // only when base plus constant wraps below 1 KiB; Rust never forms an address by wrapping,
    // and the stack (placed first, growing down from 1 MiB) reaches there only by overflowing.
    // About 700 bytes gzipped.
    // --flatten --rereloop, then the level again: rebuilds every function's control flow from its
    // basic blocks, which the passes then shrink further; about 400 bytes gzipped, and no change
    // in `make bench-wasm` (insert, first read, overwrite and reads within the run's noise).
    // --one-caller-inline-max-function-size=20: a function with one caller is inlined only when
    // small. Binaryen inlines every such function at -Oz whatever its size; keeping the larger
    // ones apart makes the module about 5 KB larger but 3.9 KB smaller gzipped (96,627 against
    // 100,544 bytes; 15, 30 and 300 gave 96,685, 96,815 and 99,390), and `make bench-wasm` moved
    // within its noise (docs/benchmarks.md).
    const level = wasmOptLevel();
    const passes = [
      '--one-caller-inline-max-function-size=20',
      level,
      '--low-memory-unused',
      '--converge',
      '--flatten',
      '--rereloop',
      level,
    ];
    run(wasmOpt, [...passes, '--strip-debug', '--strip-producers', bg, '-o', bg]);
    const bytes = readFileSync(bg);
    console.log(`${bg}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
  }
}

const what = process.argv[2] || 'node';
cjs();
if (what === 'node' || what === 'all') buildNode();
if (what === 'wasm' || what === 'all') buildWasm();
