// Real parts for the shared-tier tests in node:test: redis-server children and the
// healcache-faultproxy binary, driven over raw sockets and pipes.
//
//   const redis = await redisFor(t);               // as the restricted user, closed after the test
//   const proxy = await proxyFor(t, redis.port);
//   await proxy.set({ latencyMs: 100 });
//
// Everything listens on 127.0.0.1 only; processes are signalled by their own pid, never by name.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RESTRICTED_ACL_RULES = '~* &* +@all -keys -flushall -flushdb -debug';
const READY_TIMEOUT_MS = 10000;
// A reply larger than this is refused rather than buffered (the kit only talks to its own servers).
export const MAX_REPLY_BYTES = 64 << 20;
const WORD = /^[A-Za-z0-9._~-]{1,128}$/;
// Settings the kit itself owns (loopback only, no persistence, the ACL users): configSet refuses them.
const KIT_SETTINGS = new Set(['bind', 'port', 'unixsocket', 'dir', 'logfile', 'save', 'appendonly', 'protected-mode',
  'daemonize', 'enable-debug-command', 'requirepass', 'aclfile', 'user', 'masterauth', 'replicaof', 'slaveof']);
export const TIMEOUT = Symbol('timeout');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`'s value, or TIMEOUT if it takes longer than `ms` (the promise itself keeps running). */
export const within = (promise, ms) => {
  let timer;
  return Promise.race([promise, new Promise((r) => (timer = setTimeout(() => r(TIMEOUT), ms)))]).finally(() =>
    clearTimeout(timer),
  );
};

// Children still running when the test process exits are killed by pid, so none outlives the suite.
const live = new Set();
const gone = new WeakSet();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

// Resolves when the child has exited or could not start at all (a spawn failure is an 'error'
// event, which would otherwise crash the test process).
const track = (child) => {
  live.add(child);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, sig }));
    child.once('error', (error) => resolve({ code: null, sig: null, error }));
  });
  exited.then(() => {
    live.delete(child);
    gone.add(child);
  });
  return exited;
};
const isRunning = (child) => child !== null && !gone.has(child) && child.exitCode === null && child.signalCode === null;

/** `$REDIS_SERVER`, else `redis-server` on PATH, else null. */
export function redisServerPath() {
  if (process.env.REDIS_SERVER) return process.env.REDIS_SERVER;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, 'redis-server');
    if (dir && fs.existsSync(p)) return p;
  }
  return null;
}

export const redisAvailable = () => redisServerPath() !== null;

/** `$HEALCACHE_FAULTPROXY_BIN`, else `$CARGO_TARGET_DIR` (or target/)/release/healcache-faultproxy. */
export function faultproxyPath() {
  if (process.env.HEALCACHE_FAULTPROXY_BIN) return process.env.HEALCACHE_FAULTPROXY_BIN;
  const target = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
  return path.join(target, 'release', 'healcache-faultproxy');
}

export const restrictedUser = () => ['hc', randomBytes(16).toString('hex')];

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** An error reply; `code` is its first word (`NOPERM`, `NOAUTH`, `OOM` ...). */
export class RespError extends Error {
  constructor(message) {
    super(message);
    this.name = 'RespError';
    this.code = message.split(' ', 1)[0];
  }
}

// One reply parsed from `buf` at `at`: [value, next offset], or null when more bytes are needed.
function parse(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const rest = buf.toString('latin1', at + 1, eol);
  const next = eol + 2;
  if (kind === '+') return [rest, next];
  if (kind === '-') return [new RespError(rest), next];
  if (kind === ':') return [Number(rest), next];
  const n = Number(rest);
  if ((kind === '$' || kind === '*') && n === -1) return [null, next];
  if (!Number.isInteger(n) || n < 0 || n > MAX_REPLY_BYTES) throw new Error(`bad length ${rest}`);
  if (kind === '$') return buf.length < next + n + 2 ? null : [buf.subarray(next, next + n), next + n + 2];
  if (kind === '*') {
    const items = [];
    let pos = next;
    for (let i = 0; i < n; i++) {
      const r = parse(buf, pos);
      if (r === null) return null;
      items.push(r[0]);
      pos = r[1];
    }
    return [items, pos];
  }
  throw new Error(`unknown reply type ${JSON.stringify(kind)}`);
}

const encode = (args) => {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
};

/** A RESP2 connection on a raw socket. Replies: string, Buffer, number, array or null. */
export class Resp {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Resp(sock));
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.error = null;
    sock.on('data', (chunk) => this.#onData(chunk));
    sock.on('error', (e) => this.#fail(e));
    sock.on('close', () => this.#fail(Object.assign(new Error('connection closed'), { code: 'ECONNCLOSED' })));
  }

  #onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    try {
      for (let r; this.waiters.length && (r = parse(this.buf, 0)) !== null; ) {
        this.buf = this.buf.subarray(r[1]);
        const w = this.waiters.shift();
        r[0] instanceof RespError ? w.reject(r[0]) : w.resolve(r[0]);
      }
    } catch (e) {
      this.sock.destroy(e);
    }
  }

  #fail(e) {
    this.error ??= e;
    for (const w of this.waiters.splice(0)) w.reject(this.error);
  }

  /** Sends one command without waiting for its reply. */
  send(...args) {
    this.sock.write(encode(args));
  }

  /** The next reply (in order); an error reply rejects with RespError, a dead socket with its error. */
  read() {
    if (this.error) return Promise.reject(this.error);
    const p = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.#onData(Buffer.alloc(0));
    return p;
  }

  command(...args) {
    this.send(...args);
    return this.read();
  }

  close() {
    this.sock.destroy();
  }
}

const checkWord = (what, v) => {
  // Names, passwords and memory settings go into redis.conf as words and into URLs unescaped.
  if (typeof v !== 'string' || !WORD.test(v)) {
    throw new TypeError(`${what} must be 1-128 characters from A-Z a-z 0-9 - _ . ~`);
  }
};

/** A redis-server child on a free 127.0.0.1 port, no persistence, its own temp dir. */
export class RedisServer {
  /** @param {{aclUser?: [string, string], maxmemory?: string}} opts */
  static async start(opts = {}) {
    const { aclUser = null, maxmemory = null } = opts;
    if (aclUser) {
      checkWord('ACL user name', aclUser[0]);
      checkWord('ACL password', aclUser[1]);
      if (aclUser[0] === 'default' || aclUser[0] === 'hcadmin') {
        throw new TypeError('the ACL user may not be `default` or `hcadmin`');
      }
    }
    if (maxmemory !== null) checkWord('maxmemory setting', maxmemory);
    const exe = redisServerPath();
    if (!exe) throw new Error('redis-server is not installed (not on PATH, REDIS_SERVER unset): run .ci/setup-server.sh');
    const s = new RedisServer(exe, aclUser, maxmemory);
    try {
      for (let attempt = 0; ; attempt++) {
        s.port = await freePort();
        try {
          await s.#spawn();
          return s;
        } catch (e) {
          // Another process took the port between the probe and redis-server's bind.
          if (!/Address already in use/.test(e.message) || attempt === 4) throw e;
        }
      }
    } catch (e) {
      await s.close();
      throw e;
    }
  }

  constructor(exe, aclUser, maxmemory) {
    this.exe = exe;
    this.aclUser = aclUser;
    this.admin = aclUser ? ['hcadmin', randomBytes(16).toString('hex')] : null;
    this.maxmemory = maxmemory;
    this.config = new Map(); // from configSet, kept across restarts
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'healcache-redis-'));
    this.port = 0;
    this.child = null;
    this.exited = null;
  }

  get pid() {
    return this.child ? this.child.pid : 0;
  }

  static #url(user, port) {
    return user ? `redis://${user[0]}:${user[1]}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`;
  }

  /** With the restricted user's credentials when there is one. */
  get url() {
    return RedisServer.#url(this.aclUser, this.port);
  }

  /** `url` with its credentials but another loopback port: reach this server through a proxy. */
  urlVia(port) {
    return RedisServer.#url(this.aclUser, port);
  }

  /** The unrestricted `hcadmin` user, for test setup the restricted user may not do. */
  get adminUrl() {
    return RedisServer.#url(this.admin, this.port);
  }

  get running() {
    return isRunning(this.child);
  }

  /** A raw connection, authenticated as the restricted user (or hcadmin) when there is one. */
  async connect({ admin = false } = {}) {
    const c = await Resp.connect(this.port);
    const user = admin ? this.admin : this.aclUser;
    try {
      if (user) await c.command('AUTH', ...user);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /**
   * CONFIG SET now (as the unrestricted user) and for every later restart, e.g.
   * `configSet('maxmemory-policy', 'allkeys-lru')`. The value is words of `A-Z a-z 0-9 - _ . ~`
   * separated by single spaces (at most 256 characters); the kit's own settings are refused.
   */
  async configSet(key, value) {
    if (!/^[a-z-]{1,64}$/.test(key) || KIT_SETTINGS.has(key)) throw new TypeError(`configSet: ${key} cannot be set`);
    if (typeof value !== 'string' || value.length > 256 || !value.split(' ').every((w) => WORD.test(w))) {
      throw new TypeError('configSet: the value must be words of A-Z a-z 0-9 - _ . ~ separated by single spaces, at most 256 characters');
    }
    const c = await this.connect({ admin: true });
    try {
      await c.command('CONFIG', 'SET', key, value);
    } catch (e) {
      throw new TypeError(`CONFIG SET ${key}: ${e.message}`);
    } finally {
      c.close();
    }
    this.config.set(key, value);
  }

  /** SIGKILL by its own pid; resolves once the process is gone. */
  async kill() {
    if (!this.child) return;
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /**
   * SIGTERM (and SIGCONT, in case it is stopped): Redis closes its clients' connections and exits.
   * Falls back to SIGKILL after 10 s. Resolves to how it exited ({code, sig}; null when not running).
   */
  async terminate() {
    if (!this.child) return null;
    this.#signal('SIGTERM');
    this.#signal('SIGCONT');
    if ((await within(this.exited, 10000)) === TIMEOUT && this.running) this.child.kill('SIGKILL');
    const { code, sig } = await this.exited;
    this.child = null;
    return { code, sig };
  }

  #signal(sig) {
    // Only a child that has not exited: its pid cannot belong to another process yet.
    if (this.running) process.kill(this.child.pid, sig);
  }

  /** SIGSTOP: sockets stay open, nothing answers until cont(). */
  stop() {
    this.#signal('SIGSTOP');
  }

  cont() {
    this.#signal('SIGCONT');
  }

  /** Kill, then a new process on the same port with the same options and an empty dataset. */
  async restart() {
    await this.kill();
    const deadline = Date.now() + 2000;
    for (;;) {
      try {
        return await this.#spawn();
      } catch (e) {
        if (!/Address already in use/.test(e.message) || Date.now() > deadline) throw e;
        await sleep(50);
      }
    }
  }

  #conf() {
    const lines = [`port ${this.port}`, 'bind 127.0.0.1', 'protected-mode yes', 'save ""', 'appendonly no',
      'daemonize no', `dir "${this.dir}"`, `logfile "${this.dir}/redis.log"`];
    if (this.maxmemory) lines.push(`maxmemory ${this.maxmemory}`);
    for (const [k, v] of this.config) lines.push(`${k} ${v}`);
    if (this.aclUser) {
      // DEBUG allowed locally, so the restricted user's refusal is its ACL's (NOPERM).
      lines.push('enable-debug-command local', 'user default off',
        `user ${this.aclUser[0]} on >${this.aclUser[1]} ${RESTRICTED_ACL_RULES}`,
        `user ${this.admin[0]} on >${this.admin[1]} ~* &* +@all`);
    }
    return lines.join('\n') + '\n';
  }

  #logTail() {
    try {
      return fs.readFileSync(path.join(this.dir, 'redis.log'), 'utf8').trim().split('\n').slice(-5).join(' | ');
    } catch {
      return '';
    }
  }

  async #spawn() {
    const conf = path.join(this.dir, 'redis.conf');
    fs.writeFileSync(conf, this.#conf());
    fs.rmSync(path.join(this.dir, 'redis.log'), { force: true });
    this.child = spawn(this.exe, [conf], { cwd: this.dir, stdio: 'ignore' });
    this.exited = track(this.child);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!this.running) {
        const { code, sig, error } = await this.exited;
        this.child = null;
        if (error) throw new Error(`cannot start redis-server: ${error.message}`);
        throw new Error(`redis-server exited (${code ?? sig}) on port ${this.port}: ${this.#logTail()}`);
      }
      try {
        const c = await this.connect();
        try {
          if ((await c.command('PING')) === 'PONG') return;
        } finally {
          c.close();
        }
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`redis-server on port ${this.port} gave no PONG within ${READY_TIMEOUT_MS} ms`);
      }
      await sleep(5);
    }
  }

  async close() {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  toJSON() {
    // never shows a password
    return { port: this.port, pid: this.pid, aclUser: this.aclUser ? this.aclUser[0] : null };
  }
}

/** The healcache-faultproxy binary as a child, in front of 127.0.0.1:upstreamPort. */
export class FaultProxy {
  static async start(upstreamPort) {
    const exe = faultproxyPath();
    if (!fs.existsSync(exe)) {
      throw new Error(`${exe} is missing: build it with \`cargo build -p healcache-testkit --release --bins\` (make test does)`);
    }
    const p = new FaultProxy(spawn(exe, ['--upstream', `127.0.0.1:${upstreamPort}`], { stdio: ['pipe', 'pipe', 'pipe'] }));
    try {
      p.port = Number(await p.#line());
    } catch (e) {
      await p.close();
      throw e;
    }
    return p;
  }

  constructor(child) {
    this.child = child;
    this.exited = track(child);
    this.port = 0;
    this.out = '';
    this.err = '';
    this.lines = [];
    this.queue = Promise.resolve();
    child.stdout.setEncoding('utf8').on('data', (s) => {
      this.out += s;
      for (let i; (i = this.out.indexOf('\n')) >= 0; this.out = this.out.slice(i + 1)) {
        this.lines.push(this.out.slice(0, i));
      }
      this.#wake?.();
    });
    child.stderr.setEncoding('utf8').on('data', (s) => (this.err += s));
    this.exited.then(() => this.#wake?.());
  }

  #wake = null;

  get pid() {
    return this.child.pid;
  }

  async #line(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.length) {
      if (!isRunning(this.child)) {
        // 'exit' can come before the last of stderr: wait (briefly) for its end to tell why.
        const ended = this.child.stderr.readableEnded || new Promise((r) => this.child.stderr.once('end', r));
        await within(Promise.resolve(ended), 1000);
        throw new Error(`healcache-faultproxy exited: ${this.err.trim()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('healcache-faultproxy did not answer');
      await within(new Promise((r) => (this.#wake = r)), left);
    }
    return this.lines.shift();
  }

  // Commands go one at a time: each waits for the answer to the one before.
  #cmd(cmd) {
    const run = this.queue.then(async () => {
      this.child.stdin.write(JSON.stringify(cmd) + '\n');
      const answer = await this.#line();
      if (answer.startsWith('error ')) throw new RangeError(answer.slice(6));
      if (answer !== 'ok' && !answer.startsWith('ok ')) throw new Error(`unexpected answer ${answer}`);
      return answer.slice(3);
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Replaces the faults of `direction` ('both', 'upstream' = requests, 'downstream' = replies),
   * proxy-wide or, with `conn: id`, for that open connection only.
   * @param {{direction?: string, latencyMs?: number, jitterMs?: number, bytesPerSec?: number|null,
   *   slice1byte?: boolean, blackhole?: boolean, refuse?: boolean, dataLimit?: number|null, conn?: number}} faults
   */
  async set(faults = {}) {
    const known = ['direction', 'latencyMs', 'jitterMs', 'bytesPerSec', 'slice1byte', 'blackhole', 'refuse', 'dataLimit', 'conn'];
    const unknown = Object.keys(faults).filter((k) => !known.includes(k));
    if (unknown.length) throw new TypeError(`unknown fault options: ${unknown.join(', ')}`);
    const f = faults;
    await this.#cmd({
      cmd: 'set', direction: f.direction ?? 'both', latency_ms: f.latencyMs ?? 0, jitter_ms: f.jitterMs ?? 0,
      bytes_per_sec: f.bytesPerSec ?? null, slice_1byte: f.slice1byte ?? false, blackhole: f.blackhole ?? false,
      refuse: f.refuse ?? false, data_limit: f.dataLimit ?? null, ...(f.conn === undefined ? {} : { conn: f.conn }),
    });
  }

  /** RST one open connection. */
  async reset(conn) {
    await this.#cmd({ cmd: 'reset', conn });
  }

  /** Open connections: `[{id, age_ms, first_bytes, bytes_up, bytes_down}]`. */
  async connections() {
    return JSON.parse(await this.#cmd({ cmd: 'connections' }));
  }

  /** Milliseconds since the proxy started at which each connection was accepted (the last 4096). */
  async acceptTimes() {
    return JSON.parse(await this.#cmd({ cmd: 'accept_times' }));
  }

  async clear() {
    await this.#cmd({ cmd: 'clear' });
  }

  /** RST every open connection. */
  async resetAll() {
    await this.#cmd({ cmd: 'reset_all' });
  }

  /** `{connections, active, refused}`. */
  async stats() {
    return JSON.parse(await this.#cmd({ cmd: 'stats' }));
  }

  /** Closes its stdin (it exits on that), and kills it by pid if it has not exited within 5 s. */
  async close() {
    if (isRunning(this.child)) {
      this.child.stdin.end();
      if ((await within(this.exited, 5000)) === TIMEOUT) this.child.kill('SIGKILL');
    }
    return this.exited;
  }
}

/** A RedisServer (the restricted user unless `opts` says otherwise) closed when test `t` ends. */
export async function redisFor(t, opts = { aclUser: restrictedUser() }) {
  const redis = await RedisServer.start(opts);
  t.after(() => redis.close());
  return redis;
}

/** A FaultProxy in front of 127.0.0.1:upstreamPort, closed when test `t` ends. */
export async function proxyFor(t, upstreamPort) {
  const proxy = await FaultProxy.start(upstreamPort);
  t.after(() => proxy.close());
  return proxy;
}
