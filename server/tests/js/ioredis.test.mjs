// ioredis against healcache-server: the server runs as a child process on a free loopback
// port and is stopped by its pid.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import Redis from "ioredis";

const PASSWORD = "s3cret-for-node";
const BIN = process.env.HEALCACHE_SERVER_BIN ?? "target/release/healcache-server";
let child;
let port;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function ping(p) {
  return new Promise((resolve) => {
    const s = net.connect(p, "127.0.0.1", () => s.write("PING\r\n"));
    s.on("data", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

before(async () => {
  port = await freePort();
  child = spawn(BIN, ["--port", String(port), "--requirepass", PASSWORD], { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 500 && !(await ping(port)); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
});

after(() => {
  child.kill("SIGKILL");
});

test("commands, pipelines and errors through ioredis", async () => {
  const r = new Redis({ port, host: "127.0.0.1", password: PASSWORD, maxRetriesPerRequest: 0, lazyConnect: true });
  await r.connect();
  try {
    assert.equal(await r.ping(), "PONG");
    assert.equal(await r.set("user:1", "ada"), "OK");
    assert.equal(await r.get("user:1"), "ada");
    assert.equal(await r.get("missing"), null);
    assert.equal(await r.set("user:1", "x", "NX"), null);
    assert.equal(await r.set("tmp", "v", "PX", 60000), "OK");
    const pttl = await r.pttl("tmp");
    assert.ok(pttl > 0 && pttl <= 60000, String(pttl));
    assert.equal(await r.exists("user:1", "tmp", "missing"), 2);
    const buf = Buffer.from([0, 1, 2, 255]);
    await r.set("bin", buf);
    assert.deepEqual(await r.getBuffer("bin"), buf);
    const pipe = r.pipeline();
    for (let i = 0; i < 100; i++) pipe.set(`p${i}`, String(i));
    for (let i = 0; i < 100; i++) pipe.get(`p${i}`);
    const out = await pipe.exec();
    assert.deepEqual(out.slice(100).map(([, v]) => v), Array.from({ length: 100 }, (_, i) => String(i)));
    const stats = await r.call("CONSISTENCY", "STATS");
    assert.deepEqual(stats.filter((_, i) => i % 2 === 0), [
      "total_sampled", "total_repaired", "avg_score", "source_failures", "last_interval_ms",
    ]);
    assert.deepEqual(await r.config("GET", "healing.sample_rate"), ["healing.sample_rate", "0.01"]);
    assert.equal(await r.config("SET", "healing.sample_rate", "0.25"), "OK");
    await assert.rejects(r.config("SET", "healing.sample_rate", "2"), /^ReplyError: INVALIDCONFIG /);
    await assert.rejects(r.call("FLUSHALL"), /unknown command 'FLUSHALL'/);
    await assert.rejects(r.set("k".repeat(5000), "v"), /^ReplyError: KEYTOOLONG /);
    assert.match(await r.info("healing"), /total_repaired:0/);
    assert.equal(await r.del("user:1", "tmp", "bin"), 3);
  } finally {
    r.disconnect();
  }
});

test("a MULTI/EXEC transaction applies none of its writes", async () => {
  const r = new Redis({ port, host: "127.0.0.1", password: PASSWORD, maxRetriesPerRequest: 0, lazyConnect: true });
  await r.connect();
  try {
    assert.equal(await r.set("t", "before"), "OK");
    // MULTI answers +OK; each queued command an error, not run; EXEC answers EXECABORT.
    await assert.rejects(r.multi().set("t", "1").set("u", "1").del("t").exec(), (e) => {
      assert.equal(e.message, "EXECABORT Transaction discarded because of previous errors.");
      assert.equal(e.previousErrors.length, 3);
      for (const p of e.previousErrors) {
        assert.equal(
          String(p),
          "ReplyError: ERR not run: healcache-server has no transactions, so nothing between MULTI and EXEC runs; " +
            "EXEC or DISCARD ends it",
        );
      }
      return true;
    });
    assert.equal(await r.get("t"), "before");
    assert.equal(await r.exists("u"), 0);
    // The connection left the transaction at EXEC.
    assert.equal(await r.set("u", "2"), "OK");
    assert.equal(await r.get("u"), "2");
  } finally {
    r.disconnect();
  }
});

test("a wrong password is refused", async () => {
  const r = new Redis({ port, host: "127.0.0.1", password: "nope", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  const errors = [];
  r.on("error", (e) => errors.push(String(e)));
  await assert.rejects(r.connect());
  r.disconnect();
  assert.ok(errors.some((e) => e.includes("WRONGPASS invalid username-password pair")), errors.join("; "));
});
