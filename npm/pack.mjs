// `make package`: the npm tarballs, in the napi-rs layout, into <out> (default target/package):
//
//   healcache-<version>.tgz                 the JS wrapper, typings and the WebAssembly build; no
//                                           native binary; `optionalDependencies` on every
//                                           platform package of npm/*/package.json
//   healcache-<triple>-<version>.tgz        this machine's platform package: the addon built here
//                                           and the license texts, with the `os`, `cpu` and `libc`
//                                           npm matches on install
//
// The root package.json lists no `optionalDependencies`: until the platform packages are
// published, `npm ci` in a checkout could not resolve them. They are added to the packed
// manifest here, as napi-rs's `prepublish` does. Expects the addon (dist/healcache.node), the
// CommonJS bundle and the WebAssembly build to exist (mk/package.mk builds them first).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { platformTriple } = createRequire(import.meta.url)('../js/node/platform.js');
const out = resolve(process.argv[2] ?? join(root, 'target/package'));
const stage = join(out, 'stage');
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

const main = readJson(join(root, 'package.json'));
const triple = platformTriple();
const platforms = readdirSync(join(root, 'npm'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, 'npm', d.name, 'package.json')))
  .map((d) => d.name)
  .sort();
if (!platforms.includes(triple)) throw new Error(`no npm/${triple}/package.json: this platform has no package`);

const need = ['dist/healcache.node', 'dist/cache.cjs', 'bindings-wasm/pkg-node/healcache_wasm_bg.wasm', 'bindings-wasm/pkg-web/healcache_wasm_bg.wasm'];
for (const file of need) {
  if (!existsSync(join(root, file))) throw new Error(`${file} is missing: build it first (make package does)`);
}

rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });

function npmPack(dir) {
  // --ignore-scripts: everything is built; the staged manifests carry no scripts anyway
  const [info] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }),
  );
  console.log(`${join(out, info.filename)}: ${info.entryCount} files, ${info.size} bytes packed, ${info.unpackedSize} unpacked`);
}

// The main package: what `files` names, minus the locally built addon (the platform package
// carries it) and wasm-bindgen's typings of the raw .wasm exports (`*_bg.wasm.d.ts`: nothing
// reads them, and Deno takes one as the types of `import source wasm from '...wasm'`, then
// refuses to check it); the manifest without scripts and devDependencies, with optionalDependencies.
const mainDir = join(stage, 'healcache');
for (const entry of [...main.files, 'README.md']) {
  cpSync(join(root, entry), join(mainDir, entry), {
    recursive: true,
    filter: (src) => !src.endsWith('.node') && !src.endsWith('_bg.wasm.d.ts'),
  });
}
const { scripts, devDependencies, ...manifest } = main;
manifest.optionalDependencies = Object.fromEntries(platforms.map((p) => [`@healcache/${p}`, main.version]));
writeFileSync(join(mainDir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
npmPack(mainDir);

// This machine's platform package: its manifest at the main package's version, and the addon.
const platDir = join(stage, triple);
const plat = readJson(join(root, 'npm', triple, 'package.json'));
plat.version = main.version;
mkdirSync(platDir, { recursive: true });
cpSync(join(root, 'dist/healcache.node'), join(platDir, plat.main));
// the license texts its `license` names (npm packs a plain LICENSE by itself, not these names)
const licenses = ['LICENSE-MIT', 'LICENSE-APACHE'];
for (const file of licenses) cpSync(join(root, file), join(platDir, file));
plat.files = [...new Set([...(plat.files ?? []), ...licenses])];
writeFileSync(join(platDir, 'package.json'), JSON.stringify(plat, null, 2) + '\n');
npmPack(platDir);
