// npm's `prepare` (a checkout's `npm install`, `npm install <git url>`, `npm install <path>`) and
// `prepack`: builds what the package is missing, and says so as it goes.
//
//   node npm/prepare.mjs          the CommonJS bundle, and the native addon if no binary is here
//   node npm/prepare.mjs --pack   the same, plus the WebAssembly build (the fallback every
//                                 tarball carries)
//
// Nothing is rebuilt that exists: a checkout built by `make` passes through in a second.
// HEALCACHE_SKIP_PREPARE=1 skips it all (`make` builds with its own dependency tracking).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { platformTriple } = createRequire(import.meta.url)('../js/node/platform.js');
const pack = process.argv.includes('--pack');

// npm shows a dependency's script output only on failure (or with --foreground-scripts), so the
// lines that matter also go to the terminal when there is one.
let tty;
try {
  tty = process.stderr.isTTY ? undefined : openSync('/dev/tty', 'w');
} catch {
  tty = undefined; // no terminal (CI, Windows): stderr only
}
function say(line) {
  const text = `healcache: ${line}\n`;
  process.stderr.write(text);
  if (tty !== undefined) writeSync(tty, text);
}

function has(cmd, args = ['--version']) {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

function step(what, minutes, args) {
  say(`${what} (about ${minutes} on 2 cores the first time; cargo's progress follows)`);
  const t0 = Date.now();
  execFileSync(process.execPath, [join(root, 'js/build.mjs'), ...args], { cwd: root, stdio: 'inherit' });
  say(`${what}: done in ${Math.round((Date.now() - t0) / 1000)} s`);
}

if (process.env.HEALCACHE_SKIP_PREPARE === '1') {
  say('HEALCACHE_SKIP_PREPARE=1: nothing built');
  process.exit(0);
}

// The JS wrapper's CommonJS bundle: plain JS, always rebuilt (well under a second).
execFileSync(process.execPath, [join(root, 'js/build.mjs'), 'cjs'], { cwd: root, stdio: 'inherit' });

const native = join(root, 'dist/healcache.node');
const wasm = join(root, 'bindings-wasm/pkg-node/healcache_wasm_bg.wasm');
const cargo = has('cargo');

if (!existsSync(native) && !pack) {
  if (cargo) {
    step(`building the native addon for ${platformTriple()} with cargo`, '4 minutes', ['node']);
  } else if (!existsSync(wasm)) {
    say(
      'cargo (Rust) was not found and nothing is built: install Rust with rustup (https://rustup.rs, ' +
        '1.95 or newer) and install again, or install the npm package, which carries prebuilt binaries.',
    );
    process.exit(1);
  } else {
    say('cargo (Rust) was not found: the WebAssembly build will serve (no native addon)');
  }
}

if (pack && !existsSync(wasm)) {
  if (!cargo) {
    say('packing needs the WebAssembly build, and building it needs cargo (Rust): install it with rustup');
    process.exit(1);
  }
  const cli = has('wasm-bindgen') ? '' : ', plus about 3.5 minutes to install wasm-bindgen-cli';
  step('building the WebAssembly fallback with cargo, wasm-bindgen and wasm-opt', `2 minutes${cli}`, ['wasm']);
}
