// The npm tarballs of `make package` (target/package, or HEALCACHE_PACKAGE_DIR) installed as a
// user installs them: into an empty project, offline, from the tarball files. A CommonJS user, an
// ES module user and a TypeScript user (`tsc --strict`, then run) get the native addon from the
// platform package; without the platform package the WebAssembly build serves; with neither, or
// with the package unbuilt, `require` throws healcache's own message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = resolve(process.env.HEALCACHE_PACKAGE_DIR ?? join(root, 'target/package'));
const { platformTriple } = createRequire(import.meta.url)('../../js/node/platform.js');
const version = createRequire(import.meta.url)('../../package.json').version;
const mainTgz = join(dir, `healcache-${version}.tgz`);
const platTgz = join(dir, `healcache-${platformTriple()}-${version}.tgz`);
const tsc = join(root, 'node_modules/typescript/bin/tsc');

const temps = [];
process.on('exit', () => temps.forEach((t) => rmSync(t, { recursive: true, force: true })));

/** An empty project with `tarballs` installed offline; returns its directory. */
function project(...tarballs) {
  const p = mkdtempSync(join(tmpdir(), 'healcache-pkg-'));
  temps.push(p);
  writeFileSync(join(p, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], {
    cwd: p,
    encoding: 'utf8',
    env: { ...process.env, npm_config_cache: join(p, '.npm-cache') }, // nothing from the shared cache
  });
  return p;
}

function run(p, file, env = {}) {
  return execFileSync(process.execPath, [file], { cwd: p, encoding: 'utf8', env: { ...process.env, ...env } }).trim();
}

// One cold key, 100 concurrent callers, one loader call; a versioned write; NOT_FOUND.
const USE = `
  const cache = new Cache({ maxEntries: 1000, ttl: 60_000 });
  let calls = 0;
  const load = async (key) => { calls++; await new Promise((r) => setTimeout(r, 10)); return { key }; };
  const got = await Promise.all(Array.from({ length: 100 }, () => cache.getOrLoad('user:1', load)));
  if (calls !== 1 || !got.every((u) => u === got[0])) throw new Error('not coalesced: ' + calls);
  const v = cache.set('user:2', { id: 2 });
  if (typeof v !== 'number' || cache.get('user:2').id !== 2) throw new Error('set/get');
  const f = await cache.fetch('user:404', () => NOT_FOUND);
  if (f.value !== undefined || f.status !== 'negative-loaded') throw new Error('fetch ' + JSON.stringify(f));
  cache.close();
`;

test('the tarballs exist (make package)', () => {
  assert.ok(existsSync(mainTgz), `${mainTgz} missing: run make package`);
  assert.ok(existsSync(platTgz), `${platTgz} missing: run make package`);
});

test('CommonJS, ES module and TypeScript users get the native addon from the platform package', () => {
  const p = project(mainTgz, platTgz);
  assert.ok(existsSync(join(p, 'node_modules/@healcache', platformTriple())));
  assert.ok(!existsSync(join(p, 'node_modules/healcache/dist/healcache.node')), 'the main package carries no binary');

  writeFileSync(
    join(p, 'user.cjs'),
    `const { Cache, NOT_FOUND, backend } = require('healcache');\n(async () => {${USE}\nconsole.log(backend);\n})().catch((e) => { console.error(e); process.exit(1); });\n`,
  );
  assert.equal(run(p, 'user.cjs'), 'native');

  writeFileSync(join(p, 'user.mjs'), `import { Cache, NOT_FOUND, backend } from 'healcache';\n${USE}\nconsole.log(backend);\n`);
  assert.equal(run(p, 'user.mjs'), 'native');

  writeFileSync(
    join(p, 'typed.mts'),
    `import { Cache, NOT_FOUND, backend, type Fetched } from 'healcache';\n` +
      `declare const console: { log(...args: unknown[]): void }; // no @types/node: the package's own types only\n` +
      `interface User { id: number; name: string }\n` +
      `const users = new Cache<User>({ maxEntries: 10 });\n` +
      `users.set('u:1', { id: 1, name: 'Ada' });\n` +
      `const u: User | undefined = users.get('u:1');\n` +
      `const f: Fetched<User> = await users.fetch('u:2', async (): Promise<User | typeof NOT_FOUND> => NOT_FOUND);\n` +
      `const which: 'native' | 'wasm' = backend;\n` +
      `console.log(which, u?.name, f.status);\n` +
      `users.close();\n`,
  );
  writeFileSync(
    join(p, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, types: [], lib: ['es2022'], skipLibCheck: false },
      files: ['typed.mts'],
    }),
  );
  try {
    execFileSync(process.execPath, [tsc, '-p', '.'], { cwd: p, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc --strict failed:\n${e.stdout}${e.stderr}`);
  }
  assert.equal(run(p, 'typed.mjs'), 'native Ada negative-loaded');
});

test('without the platform package the WebAssembly build serves', () => {
  const p = project(mainTgz);
  assert.ok(!existsSync(join(p, 'node_modules/@healcache')), 'no platform package was installed');
  writeFileSync(join(p, 'user.mjs'), `import { Cache, NOT_FOUND, backend } from 'healcache';\n${USE}\nconsole.log(backend);\n`);
  assert.equal(run(p, 'user.mjs'), 'wasm');
  writeFileSync(join(p, 'user.cjs'), `const { backend, Cache } = require('healcache');\nnew Cache().set('k', 1);\nconsole.log(backend);\n`);
  assert.equal(run(p, 'user.cjs'), 'wasm');
  // an addon built for another machine (a tarball packed elsewhere) is passed over, not fatal
  writeFileSync(join(p, 'node_modules/healcache/dist/healcache.node'), 'not a shared object');
  assert.equal(run(p, 'user.cjs'), 'wasm');
  // and asking for the native addon where there is none is healcache's own error
  assert.throws(() => run(p, 'user.cjs', { HEALCACHE_BACKEND: 'native' }), /healcache: no native binary for .*rustup/s);
});

test('an install with nothing to run says so in its own words', () => {
  const p = project(mainTgz);
  writeFileSync(join(p, 'user.cjs'), `require('healcache');\n`);
  const pkg = join(p, 'node_modules/healcache');
  rmSync(join(pkg, 'bindings-wasm'), { recursive: true });
  const noBackend = () => run(p, 'user.cjs');
  assert.throws(noBackend, (e) => /healcache: neither a native binary .* nor the WebAssembly build/s.test(e.stderr) && /HEALCACHE_NOT_BUILT/.test(e.stderr));
  rmSync(join(pkg, 'dist'), { recursive: true });
  assert.throws(noBackend, (e) => /healcache: the package is not built \(dist\/cache\.cjs is missing\)/.test(e.stderr) && !/^Error: Cannot find module/m.test(e.stderr));
});
