// Runs workers under real edge runtimes for tests/edge: workerd (npm `workerd`) and Deno (npm
// `deno`), each a child process on 127.0.0.1, stopped by its pid. The origin the workers call is
// an HTTP server on 127.0.0.1 started by the test, counting its calls.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(join(root, 'package.json'));
// The runtimes' own executables, not the npm `bin` shims: a shim is a node process that runs the
// binary as its child, so stopping the shim by its pid would leave the runtime running, holding
// the pipes (and this test file) open.
const EXECUTABLES = {
  workerd: () => require('workerd').default,
  // the package copies its platform package's binary beside itself at first use (its shim does
  // this when npm ran no install scripts)
  deno: () => require('deno/install_api.cjs').runInstall(),
};
const bin = (name) => {
  try {
    return EXECUTABLES[name]();
  } catch {
    return join(root, 'node_modules/.bin', name); // not installed: cannotRun reports ENOENT
  }
};

/** The Deno executable (npm `deno`). */
export const denoBin = () => bin('deno');

/** Why `name --version` cannot run here (a printed skip reason), or undefined when it can. */
export function cannotRun(name) {
  const r = spawnSync(bin(name), ['--version'], { encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT') return `${name} is not installed: run npm ci (devDependency ${name})`;
  if (r.status !== 0) return `${name} does not run on this platform (${process.platform}-${process.arch}): ${r.stderr || r.error}`;
  return undefined;
}

/** The pids of running processes whose command line mentions `text` (Linux: read from /proc). */
export function processesMentioning(text) {
  const pids = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text)) pids.push(Number(pid));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** A free loopback port. */
export async function freePort() {
  const s = netServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/**
 * An origin on 127.0.0.1: `answer(path)` gives `{ status, body, delayMs }`; `calls` counts
 * requests per path.
 */
export async function startOrigin(answer) {
  const calls = new Map();
  const server = createServer((req, res) => {
    calls.set(req.url, (calls.get(req.url) || 0) + 1);
    const { status = 200, body = '', delayMs = 0 } = answer(req.url);
    setTimeout(() => res.writeHead(status, { 'content-type': 'application/json' }).end(body), delayMs);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls: (path) => calls.get(path) || 0,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Waits until `url` answers (any status), up to `ms`. */
async function waitUp(url, child, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`runtime exited (${child.exitCode}):\n${child.output()}`);
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > end) throw new Error(`runtime did not answer at ${url}:\n${child.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function startChild(cmd, args, opts) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  child.output = () => out;
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid, 'SIGTERM');
  await gone;
}

// The package's files as a worker imports them: module name -> file (the bare names a user writes,
// and the relative names the package's own modules resolve to from there).
const PACKAGE_MODULES = [
  ['healcache/wasm/web', 'js/wasm/web.mjs'],
  ['healcache/cache.mjs', 'js/cache.mjs'],
  ['healcache/options.mjs', 'js/options.mjs'],
  ['healcache/mirror.mjs', 'js/mirror.mjs'],
  ['healcache/healing.mjs', 'js/healing.mjs'],
  ['healcache/write_behind.mjs', 'js/write_behind.mjs'],
  ['bindings-wasm/pkg-web/healcache_wasm.js', 'bindings-wasm/pkg-web/healcache_wasm.js'],
  // the opt-in wire module
  ['healcache/wasm/wire', 'wasm-wire/pkg-web/healcache_wasm_wire.js'],
  // the conformance driver, for tests/edge/conformance_worker.mjs
  ['healcache-tests/driver.mjs', 'tests/js/driver.mjs'],
];

/** The worker source with its wasm import as Deno takes it (`import source`: a WebAssembly.Module). */
export const denoImports = (source) =>
  source.replace(/^import (\w+) from '(healcache\/wasm\/(?:healcache_wasm_bg|wire_bg)\.wasm)';/gm, "import source $1 from '$2';");

const denoMap = () => ({
  imports: {
    'healcache/wasm/web': pathToFileURL(join(root, 'js/wasm/web.mjs')).href,
    'healcache/wasm/healcache_wasm_bg.wasm': pathToFileURL(join(root, 'bindings-wasm/pkg-web/healcache_wasm_bg.wasm')).href,
    'healcache/wasm/wire': pathToFileURL(join(root, 'wasm-wire/pkg-web/healcache_wasm_wire.js')).href,
    'healcache/wasm/wire_bg.wasm': pathToFileURL(join(root, 'wasm-wire/pkg-web/healcache_wasm_wire_bg.wasm')).href,
    'healcache-tests/driver.mjs': pathToFileURL(join(root, 'tests/js/driver.mjs')).href,
  },
});
const denoEnv = (dir) => ({ ...process.env, DENO_DIR: join(dir, '.deno'), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' });

/** Runs `source` as a Deno script (reading the package only); returns spawnSync's result. */
export function runDeno(source) {
  const dir = mkdtempSync(join(tmpdir(), 'healcache-deno-'));
  try {
    writeFileSync(join(dir, 'main.mjs'), source);
    writeFileSync(join(dir, 'import_map.json'), JSON.stringify(denoMap()));
    const args = ['run', '--quiet', `--allow-read=${root}`, '--no-prompt', `--import-map=${join(dir, 'import_map.json')}`, join(dir, 'main.mjs')];
    return spawnSync(bin('deno'), args, { cwd: dir, env: denoEnv(dir), encoding: 'utf8', timeout: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts `deno serve` with `source` (an ES module worker, its imports as Deno takes them) on a
 * free loopback port, allowed to reach 127.0.0.1 only. Deno has no request context to extend nor
 * cron in `serve`: a wrapper passes `{ waitUntil }` to the worker and runs its `scheduled`
 * handler on `GET /__scheduled`. Returns what `running` gives.
 */
export async function startDeno(source) {
  const dir = mkdtempSync(join(tmpdir(), 'healcache-deno-'));
  const port = await freePort();
  writeFileSync(join(dir, 'worker.mjs'), source);
  writeFileSync(
    join(dir, 'serve.mjs'),
    `import worker from './worker.mjs';
const ctx = { waitUntil: (p) => { p.catch(() => {}); } };
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === '/__up') return new Response('up');
    if (path === '/__scheduled') {
      const waits = [];
      await worker.scheduled({ cron: '* * * * *' }, {}, { waitUntil: (p) => waits.push(p) });
      return Response.json(await Promise.all(waits));
    }
    return worker.fetch(req, {}, ctx);
  },
};
`,
  );
  writeFileSync(join(dir, 'import_map.json'), JSON.stringify(denoMap()));
  const args = [
    'serve', '--quiet', '--host', '127.0.0.1', '--port', String(port), '--allow-net=127.0.0.1',
    `--allow-read=${dir},${root}`, '--no-prompt', `--import-map=${join(dir, 'import_map.json')}`, join(dir, 'serve.mjs'),
  ];
  const child = startChild(bin('deno'), args, { cwd: dir, env: denoEnv(dir) });
  const url = `http://127.0.0.1:${port}`;
  return running(child, dir, url, `${url}/__scheduled`, 60_000);
}

/**
 * Starts `workerd serve` with `source` (an ES module worker, with the compatibility `flags`
 * given) on a free loopback port; its global
 * `fetch` may reach 127.0.0.1 (the test's origin). A second worker, `trigger`, runs the main
 * worker's `scheduled` handler through a service binding (raw workerd has no
 * `/cdn-cgi/handler/scheduled`: that route is wrangler's). Returns what `running` gives.
 */
export async function startWorkerd(source, { flags = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'healcache-workerd-'));
  const [port, triggerPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'worker.mjs'), source);
  // embed paths are relative to the config: the package's files are copied beside it
  const copy = (file) => {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(root, file), join(dir, file));
    return JSON.stringify(file);
  };
  const mod = (name, file) => `(name = ${JSON.stringify(name)}, esModule = embed ${copy(file)})`;
  const modules = [
    `(name = "worker.mjs", esModule = embed "worker.mjs")`,
    ...PACKAGE_MODULES.map(([n, f]) => mod(n, f)),
    `(name = "healcache/wasm/healcache_wasm_bg.wasm", wasm = embed ${copy('bindings-wasm/pkg-web/healcache_wasm_bg.wasm')})`,
    `(name = "healcache/wasm/wire_bg.wasm", wasm = embed ${copy('wasm-wire/pkg-web/healcache_wasm_wire_bg.wasm')})`,
  ];
  const trigger =
    "export default { async fetch(req, env) { const r = await env.MAIN.scheduled({ cron: '* * * * *' });" +
    ' return Response.json(r); } };';
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .main),
    (name = "trigger", worker = .trigger),
    (name = "loopback", network = (allow = ["local", "private"])),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:${port}", http = (), service = "main"),
    (name = "trigger", address = "127.0.0.1:${triggerPort}", http = (), service = "trigger"),
  ],
);
const main :Workerd.Worker = (
  modules = [ ${modules.join(',\n    ')} ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ${JSON.stringify(flags)},
  globalOutbound = "loopback",
);
const trigger :Workerd.Worker = (
  modules = [ (name = "trigger.mjs", esModule = ${JSON.stringify(trigger)}) ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["service_binding_extra_handlers"],
  bindings = [ (name = "MAIN", service = "main") ],
);
`,
  );
  // --experimental: the trigger's `scheduled()` on a service binding is an experimental handler
  const child = startChild(bin('workerd'), ['serve', join(dir, 'config.capnp'), '--experimental'], { cwd: dir });
  return running(child, dir, `http://127.0.0.1:${port}`, `http://127.0.0.1:${triggerPort}/scheduled`, 20_000);
}

/**
 * A started runtime once it answers at `url`: `{ url, dir, scheduled, stop, output }`, where
 * `scheduled()` asks `scheduledUrl` to run the worker's scheduled handler and `stop()` stops the
 * runtime by its pid and removes `dir`. A runtime that does not come up is stopped at once.
 */
async function running(child, dir, url, scheduledUrl, upMs) {
  const done = async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUp(`${url}/__up`, child, upMs);
  } catch (e) {
    await done();
    throw e;
  }
  return { url, dir, scheduled: () => fetch(scheduledUrl).then((r) => r.json()), output: child.output, stop: done };
}
