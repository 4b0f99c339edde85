// The npm tarballs of `make package` (target/package, or HEALCACHE_PACKAGE_DIR) installed as a
// user installs them: into an empty project, offline, from the tarball files. A CommonJS user, an
// ES module user and a TypeScript user (`tsc --strict`, then run) get the native addon from the
// platform package; without the platform package the WebAssembly build serves; with neither, or
// with the package unbuilt, `require` throws healcache's own message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const { cannotRun, denoBin } = await import('../edge/harness.mjs');

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

// P9 (every host's rules hold): docs/install.md promises the WebAssembly build wherever no native
// binary fits, and a platform package npm installed can still not load here (its addon needs a
// newer glibc than this machine's: npm matches `libc` by family only).
test('P9: a platform package whose addon cannot load here is passed over for the WebAssembly build', () => {
  const p = project(mainTgz, platTgz);
  const plat = join(p, 'node_modules/@healcache', platformTriple());
  const { main } = JSON.parse(readFileSync(join(plat, 'package.json'), 'utf8'));
  writeFileSync(join(plat, main), 'not a shared object'); // dlopen fails as on a too-old glibc
  writeFileSync(join(p, 'user.cjs'), `const { backend, Cache } = require('healcache');\nnew Cache().set('k', 1);\nconsole.log(backend);\n`);
  assert.equal(run(p, 'user.cjs'), 'wasm');
  writeFileSync(join(p, 'user.mjs'), `import { Cache, NOT_FOUND, backend } from 'healcache';\n${USE}\nconsole.log(backend);\n`);
  assert.equal(run(p, 'user.mjs'), 'wasm');
  // asked for the native addon, the error names why the one found did not load
  assert.throws(
    () => run(p, 'user.cjs', { HEALCACHE_BACKEND: 'native' }),
    (e) => /HEALCACHE_NOT_BUILT/.test(e.stderr) && new RegExp(`@healcache/${platformTriple()}: .*(file too short|invalid ELF header)`).test(e.stderr),
  );
});

test('the platform package carries the license texts it declares (MIT OR Apache-2.0)', () => {
  for (const tgz of [mainTgz, platTgz]) {
    const files = execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).split('\n');
    assert.ok(files.includes('package/LICENSE-MIT') && files.includes('package/LICENSE-APACHE'), `${tgz}: ${files.join(' ')}`);
  }
});

// The typings of the WebAssembly entries, as TypeScript users of each resolution mode compile
// them: `init` is callable (web.mjs is ES module code, so its types must read as such), and
// `backend`, which only the Node entry has, is not offered by the WebAssembly ones.
test('TypeScript: healcache/wasm/web types its default init under nodenext and bundler; no `backend` on the wasm entries', () => {
  const p = project(mainTgz);
  writeFileSync(
    join(p, 'web.mts'),
    `import init, { initSync, Cache, NOT_FOUND, type Fetched } from 'healcache/wasm/web';\n` +
      `import wasm from 'healcache/wasm/healcache_wasm_bg.wasm';\n` +
      `await init();\ninitSync(wasm);\n` +
      `const c = new Cache<number>({ maxEntries: 10 });\n` +
      `const f: Fetched<number> = await c.fetch('k', async (): Promise<number | typeof NOT_FOUND> => 1);\n` +
      `export const got: number | undefined = c.get('k') ?? f.value;\n`,
  );
  writeFileSync(join(p, 'node.mts'), `import { Cache, NOT_FOUND } from 'healcache/wasm';\nexport const c = new Cache<string>();\nexport const nf = NOT_FOUND;\n`);
  writeFileSync(join(p, 'backend_web.mts'), `import { backend } from 'healcache/wasm/web';\nexport const b: unknown = backend;\n`);
  writeFileSync(join(p, 'backend_node.mts'), `import { backend } from 'healcache/wasm';\nexport const b: unknown = backend;\n`);
  const compile = (resolution, files) => {
    const module = resolution === 'bundler' ? 'esnext' : 'nodenext';
    writeFileSync(
      join(p, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2022', module, moduleResolution: resolution, strict: true, noEmit: true, types: [], lib: ['es2022', 'dom'], skipLibCheck: false },
        files,
      }),
    );
    try {
      execFileSync(process.execPath, [tsc, '-p', '.'], { cwd: p, encoding: 'utf8' });
      return '';
    } catch (e) {
      return `${e.stdout}${e.stderr}` || 'failed';
    }
  };
  for (const resolution of ['nodenext', 'bundler']) {
    assert.equal(compile(resolution, ['web.mts', 'node.mts']), '', `${resolution}: the documented imports type-check`);
    for (const file of ['backend_web.mts', 'backend_node.mts']) {
      assert.match(compile(resolution, [file]), /backend/, `${resolution}: ${file} must not type-check`);
    }
  }
});

// Deno type-checks (`deno check`, `deno test`) what it runs: docs/edge.md's Deno imports must pass.
// TypeScript itself does not parse `import source` yet, so that form is checked in a JS module.
test('deno: the documented imports pass deno check', { skip: cannotRun('deno') }, () => {
  const p = project(mainTgz);
  writeFileSync(join(p, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual' }));
  writeFileSync(
    join(p, 'source.mjs'),
    `import { initSync, Cache } from 'healcache/wasm/web';\nimport source wasm from 'healcache/wasm/healcache_wasm_bg.wasm';\n` +
      `initSync(wasm);\nconst c = new Cache();\nc.set('k', 1);\nconsole.log(c.get('k'));\n`,
  );
  writeFileSync(
    join(p, 'init.ts'),
    `import init, { Cache } from 'healcache/wasm/web';\nawait init();\nconst c = new Cache<number>();\nc.set('k', 2);\nconst v: number | undefined = c.get('k');\nconsole.log(v);\n`,
  );
  const env = { ...process.env, DENO_DIR: join(p, '.deno'), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  for (const [file, out] of [['source.mjs', '1'], ['init.ts', '2']]) {
    for (const cmd of [['check', file], ['run', '--check', `--allow-read=${p}`, file]]) {
      let got;
      try {
        got = execFileSync(denoBin(), cmd, { cwd: p, env, encoding: 'utf8', stdio: 'pipe' }).trim();
      } catch (e) {
        assert.fail(`deno ${cmd.join(' ')}:\n${e.stdout}${e.stderr}`);
      }
      if (cmd[0] === 'run') assert.equal(got, out, `deno ${cmd.join(' ')}`);
    }
  }
});
