// The Node side of the real-parts kit: redis-server children and the fault proxy binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  FaultProxy, MAX_REPLY_BYTES, RedisServer, Resp, TIMEOUT, proxyFor, redisAvailable, redisFor, restrictedUser, within,
} from './rediskit.mjs';

const alive = (pid) => fs.existsSync(`/proc/${pid}`);

async function setup(t) {
  const redis = await redisFor(t);
  const proxy = await proxyFor(t, redis.port);
  return { redis, proxy };
}

async function proxied(proxy, redis) {
  const c = await Resp.connect(proxy.port);
  assert.equal(await c.command('AUTH', ...redis.aclUser), 'OK');
  return c;
}

test('redis-server is installed', () => {
  assert.ok(redisAvailable(), 'redis-server is missing: run .ci/setup-server.sh');
});

test('PING through the proxy', async (t) => {
  const { redis, proxy } = await setup(t);
  const c = await proxied(proxy, redis);
  assert.equal(await c.command('PING'), 'PONG');
  assert.equal(await c.command('SET', 'k', 'v'), 'OK');
  c.close();
  const direct = await redis.connect();
  assert.deepEqual(await direct.command('GET', 'k'), Buffer.from('v'));
  direct.close();
  const stats = await proxy.stats();
  assert.equal(stats.connections, 1);
  assert.equal(stats.refused, 0);
});

test('latency is observed', async (t) => {
  const { redis, proxy } = await setup(t);
  const c = await proxied(proxy, redis);
  await proxy.set({ latencyMs: 100 });
  let t0 = performance.now();
  assert.equal(await c.command('PING'), 'PONG');
  assert.ok(performance.now() - t0 >= 200 - 1, `${performance.now() - t0} ms`); // 100 ms each way
  await proxy.set({ direction: 'downstream' });
  t0 = performance.now();
  assert.equal(await c.command('PING'), 'PONG');
  assert.ok(performance.now() - t0 >= 100 - 1);
  c.close();
});

test('blackhole makes a read time out; clear lets the held connection go on', async (t) => {
  const { redis, proxy } = await setup(t);
  const c = await proxied(proxy, redis);
  await proxy.set({ direction: 'downstream', blackhole: true });
  const dropped = c.command('PING');
  assert.equal(await within(dropped, 300), TIMEOUT);
  await proxy.clear();
  const d = await proxied(proxy, redis);
  assert.equal(await d.command('PING'), 'PONG');
  c.close();
  await assert.rejects(dropped); // the dropped reply never comes; closing rejects it
  d.close();
});

test('reset_all resets open connections', async (t) => {
  const { redis, proxy } = await setup(t);
  const c = await proxied(proxy, redis);
  const reset = assert.rejects(c.read(), { code: 'ECONNRESET' });
  await proxy.resetAll();
  await reset;
});

test('refuse and data limit', async (t) => {
  const { redis, proxy } = await setup(t);
  await proxy.set({ refuse: true });
  // The reset can arrive before connect completes, or at the first read.
  await assert.rejects(async () => {
    const c = await Resp.connect(proxy.port);
    await c.command('PING');
  }, (e) => ['ECONNRESET', 'ECONNCLOSED'].includes(e.code));
  assert.equal((await proxy.stats()).refused, 1);
  await proxy.clear();
  await proxy.set({ direction: 'downstream', dataLimit: 7 });
  const c = await Resp.connect(proxy.port);
  const chunks = [];
  c.sock.on('data', (b) => chunks.push(b));
  const closed = new Promise((r) => c.sock.once('close', r));
  c.send('AUTH', ...redis.aclUser);
  c.send('PING');
  await closed;
  // +OK (5 bytes), then 2 bytes of +PONG, then the proxy closes.
  assert.equal(Buffer.concat(chunks).toString(), '+OK\r\n+P');
});

test('1-byte slicing and jitter keep replies whole and in order', async (t) => {
  const { redis, proxy } = await setup(t);
  await proxy.set({ slice1byte: true, jitterMs: 5 });
  const c = await proxied(proxy, redis);
  const replies = Array.from({ length: 30 }, (_, i) => c.command('ECHO', `m${i}`));
  assert.deepEqual((await Promise.all(replies)).map(String), Array.from({ length: 30 }, (_, i) => `m${i}`));
  c.close();
});

test('bad proxy commands reject and change nothing', async (t) => {
  const { redis, proxy } = await setup(t);
  await assert.rejects(proxy.set({ direction: 'sideways', blackhole: true }), RangeError);
  await assert.rejects(proxy.set({ latencyMs: 3_600_001, blackhole: true }), RangeError);
  await assert.rejects(proxy.set({ latencyMs: -1, blackhole: true }), RangeError);
  await assert.rejects(proxy.set({ latency: 5 }), TypeError);
  const c = await proxied(proxy, redis);
  assert.equal(await within(c.command('PING'), 5000), 'PONG');
  c.close();
});

test('restart keeps the port with a new pid', async (t) => {
  const redis = await RedisServer.start({ aclUser: restrictedUser() });
  t.after(() => redis.close());
  const { port, pid } = redis;
  let c = await redis.connect();
  await c.command('SET', 'k', 'v');
  c.close();
  await redis.kill();
  assert.ok(!alive(pid) && !redis.running);
  await assert.rejects(redis.connect(), { code: 'ECONNREFUSED' });
  await redis.restart();
  assert.equal(redis.port, port);
  assert.notEqual(redis.pid, pid);
  c = await redis.connect();
  assert.equal(await c.command('GET', 'k'), null); // nothing persisted
  await assert.rejects(c.command('FLUSHALL'), { code: 'NOPERM' }); // same ACL after the restart
  c.close();
});

test('stop and cont', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  const c = await redis.connect();
  redis.stop();
  const reply = c.command('PING');
  assert.equal(await within(reply, 300), TIMEOUT);
  redis.cont();
  assert.equal(await reply, 'PONG');
  c.close();
});

test('the restricted user is denied KEYS, FLUSHALL, FLUSHDB and DEBUG, not cache work', async (t) => {
  const redis = await RedisServer.start({ aclUser: restrictedUser() });
  t.after(() => redis.close());
  assert.equal(redis.url, `redis://hc:${redis.aclUser[1]}@127.0.0.1:${redis.port}`);
  assert.equal(redis.urlVia(7), `redis://hc:${redis.aclUser[1]}@127.0.0.1:7`);
  const c = await redis.connect();
  for (const cmd of [['KEYS', '*'], ['FLUSHALL'], ['FLUSHDB'], ['DEBUG', 'SLEEP', '0']]) {
    await assert.rejects(c.command(...cmd), { code: 'NOPERM' }, cmd[0]);
  }
  assert.equal(await c.command('SET', 'k', 'v'), 'OK');
  assert.equal(String(await c.command('GET', 'k')), 'v');
  assert.equal(String(await c.command('EVAL', "return redis.call('GET', KEYS[1])", 1, 'k')), 'v');
  await assert.rejects(c.command('EVAL', "return redis.call('KEYS', '*')", 0), /can't run this command/);
  const [, keys] = await c.command('SCAN', 0, 'MATCH', 'k*');
  assert.deepEqual(keys.map(String), ['k']);
  assert.equal(await c.command('UNLINK', 'k'), 1);
  assert.equal(await c.command('PUBLISH', 'ch', 'm'), 0);
  c.close();
  const admin = await redis.connect({ admin: true });
  assert.equal(await admin.command('DEBUG', 'SLEEP', '0'), 'OK'); // so the refusals above are the ACL's
  admin.close();
  const anon = await Resp.connect(redis.port);
  await assert.rejects(anon.command('PING'), { code: 'NOAUTH' });
  anon.close();
  assert.ok(!JSON.stringify(redis).includes(redis.aclUser[1]));
});

test('maxmemory, configSet and bad options', async (t) => {
  const redis = await RedisServer.start({ aclUser: restrictedUser(), maxmemory: '2mb' });
  t.after(() => redis.close());
  await redis.configSet('maxmemory-policy', 'allkeys-lru');
  await redis.restart(); // kept across a restart
  let c = await redis.connect({ admin: true });
  assert.deepEqual((await c.command('CONFIG', 'GET', 'maxmemory')).map(String), ['maxmemory', '2097152']);
  assert.deepEqual((await c.command('CONFIG', 'GET', 'maxmemory-policy')).map(String), ['maxmemory-policy', 'allkeys-lru']);
  c.close();
  for (const [key, value] of [['bind', '0.0.0.0'], ['save', '60 1'], ['MAXMEMORY', '1mb'], ['maxmemory', '1mb\n'],
    ['maxmemory', '1mb '], ['maxmemory-policy', 'no-such-policy'], ['x', '1'.repeat(257)]]) {
    await assert.rejects(redis.configSet(key, value), TypeError, key);
  }
  await redis.restart();
  c = await redis.connect({ admin: true });
  assert.deepEqual((await c.command('CONFIG', 'GET', 'bind')).map(String), ['bind', '127.0.0.1']);
  c.close();
  for (const bad of [{ aclUser: ['a b', 'pw'] }, { aclUser: ['hc', ''] }, { aclUser: ['default', 'pw'] },
    { aclUser: ['hc', 'p'.repeat(129)] }, { maxmemory: '1mb\nuser x on' }]) {
    await assert.rejects(RedisServer.start(bad), TypeError, JSON.stringify(bad));
  }
  const longest = await RedisServer.start({ aclUser: ['hc', 'p'.repeat(128)] });
  const l = await longest.connect();
  assert.equal(await l.command('PING'), 'PONG');
  l.close();
  await longest.close();
});

test('close kills by pid; the proxy exits when its stdin closes', async () => {
  const redis = await RedisServer.start();
  const proxy = await FaultProxy.start(redis.port);
  const [pid, proxyPid] = [redis.pid, proxy.pid];
  await redis.close();
  assert.deepEqual(await proxy.close(), { code: 0, sig: null });
  assert.ok(!alive(pid) && !alive(proxyPid));
});

test('one connection faulted and reset alone', async (t) => {
  const { redis, proxy } = await setup(t);
  const data = await proxied(proxy, redis);
  const bus = await proxied(proxy, redis);
  await bus.command('SUBSCRIBE', 'inval');
  const conns = await proxy.connections();
  assert.deepEqual(conns.map((c) => c.id), [1, 2]);
  const busId = conns.find((c) => c.first_bytes.includes('SUBSCRIBE')).id;
  assert.equal(busId, 2);
  await proxy.set({ conn: busId, direction: 'downstream', blackhole: true });
  assert.equal(await data.command('PUBLISH', 'inval', 'k'), 1);
  const message = bus.read();
  assert.equal(await within(message, 300), TIMEOUT);
  const reset = assert.rejects(data.read(), { code: 'ECONNRESET' });
  await proxy.reset(1);
  await reset;
  await assert.rejects(proxy.set({ conn: 99, blackhole: true }), /no open connection 99/);
  await assert.rejects(proxy.reset(99), RangeError);
  bus.close();
  await assert.rejects(message);
  const times = await proxy.acceptTimes();
  assert.equal(times.length, 2);
  assert.ok(times[0] <= times[1]);
});

test('a missing redis-server or proxy binary is a clear error, not a crash or a hang', async () => {
  const saved = { ...process.env };
  try {
    process.env.REDIS_SERVER = '/nonexistent/redis-server';
    await assert.rejects(RedisServer.start(), /cannot start redis-server: .*ENOENT/);
    process.env.HEALCACHE_FAULTPROXY_BIN = '/nonexistent/healcache-faultproxy';
    await assert.rejects(FaultProxy.start(1), /healcache-faultproxy is missing: build it with/);
  } finally {
    process.env = saved;
  }
  // Refused arguments: the binary exits with its reason, which the error carries.
  await assert.rejects(FaultProxy.start('nonsense'), /healcache-faultproxy exited: .*bad --upstream/);
});

test('terminate shuts down cleanly, also when stopped', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  const pid = redis.pid;
  const c = await redis.connect();
  const closed = assert.rejects(c.read()); // Redis closes its clients' connections on the way out
  assert.deepEqual(await redis.terminate(), { code: 0, sig: null }); // not the SIGKILL fallback
  await closed;
  assert.ok(!alive(pid));
  assert.equal(await redis.terminate(), null);
  await redis.restart();
  redis.stop();
  assert.deepEqual(await redis.terminate(), { code: 0, sig: null });
});

test('redisFor and proxyFor close what they started when the test ends', async (t) => {
  const pids = [];
  await t.test('inner', async (t) => {
    const redis = await redisFor(t);
    const plain = await redisFor(t, {});
    const proxy = await proxyFor(t, redis.port);
    assert.equal(redis.aclUser[0], 'hc');
    assert.equal(plain.aclUser, null);
    pids.push(redis.pid, plain.pid, proxy.pid);
    assert.ok(pids.every(alive));
  });
  assert.equal(pids.length, 3);
  assert.ok(!pids.some(alive));
});

// A loopback listener that sends `payload` to its first client and closes.
async function serveOnce(payload) {
  const srv = net.createServer((sock) => {
    sock.end(payload);
    srv.close();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return srv.address().port;
}

test('Resp refuses a length past the bound', async () => {
  let c = await Resp.connect(await serveOnce(`$${MAX_REPLY_BYTES + 1}\r\n`));
  await assert.rejects(c.read(), /bad length/);
  // At the bound the length is accepted: what fails is the payload that never comes.
  c = await Resp.connect(await serveOnce(`$${MAX_REPLY_BYTES}\r\n`));
  await assert.rejects(c.read(), { code: 'ECONNCLOSED' });
});
