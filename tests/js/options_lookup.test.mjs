// How option objects are read: a known option is `options[name]` (own, inherited or a getter, as
// destructuring reads it, as lru-cache does), and every enumerable name, own or inherited, is
// checked, so an inherited misspelling is refused (InvalidConfig naming it) rather than ignored.
// The same for `new Cache(options)` and for a call's options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import { Cache, WASM, thrown } from './helpers.mjs';

const { ManualClock } = WASM ? await import('healcache/wasm') : await import('healcache');

const isInvalid = (field) => (e) => e.code === 'InvalidConfig' && e.field === field;

/** Sets four keys and checks the cache holds at most `bound` of them. */
function fillsTo(c, bound) {
  for (const k of ['a', 'b', 'c', 'd']) c.set(k, k);
  assert.ok(c.size <= bound, `size ${c.size} past the bound ${bound}`);
}

test('an inherited maxEntries bounds the cache, and toJSON/inspect show that bound', () => {
  const c = new Cache(Object.create({ maxEntries: 2 }));
  fillsTo(c, 2);
  assert.deepEqual(c.toJSON(), { entries: c.size, maxEntries: 2 });
  assert.match(util.inspect(c), /maxEntries: 2 \}/);
});

test('a maxEntries getter (a class of options) bounds the cache', () => {
  class Opts {
    get maxEntries() {
      return 2;
    }
  }
  const c = new Cache(new Opts());
  fillsTo(c, 2);
  assert.equal(c.toJSON().maxEntries, 2);
  // a non-enumerable own option is read too, as destructuring would
  const d = new Cache(Object.defineProperty({}, 'maxEntries', { value: 2, enumerable: false }));
  fillsTo(d, 2);
});

test('an inherited ttl of the constructor expires entries', () => {
  const clock = new ManualClock();
  const c = new Cache(Object.create({ ttl: 1000, clock }));
  c.set('k', 1);
  assert.equal(c.get('k'), 1);
  clock.advance(2000);
  assert.equal(c.get('k'), undefined, 'the inherited ttl was not applied');
});

test('an inherited misspelt option of the constructor is refused, naming it', () => {
  const e = thrown(() => new Cache(Object.create({ maxEntriess: 2 })));
  assert.ok(isInvalid('maxEntriess')(e), String(e));
  assert.match(e.message, /`maxEntriess` is not an option/);
  // an own misspelling as before
  assert.ok(isInvalid('maxEntriess')(thrown(() => new Cache({ maxEntriess: 2 }))));
  // a wrong type reached by inheritance is refused as an own one is
  assert.ok(isInvalid('maxEntries')(thrown(() => new Cache(Object.create({ maxEntries: '2' })))));
  assert.ok(isInvalid('sizeOf')(thrown(() => new Cache(Object.create({ sizeOf: 1 })))));
});

test('an inherited misspelt option of a call is refused, naming it, and nothing changes', async () => {
  const c = new Cache();
  const e = thrown(() => c.set('k', 1, Object.create({ tttl: 10 })));
  assert.ok(isInvalid('tttl')(e), String(e));
  assert.equal(c.has('k'), false);
  assert.ok(isInvalid('iffVersion')(thrown(() => c.delete('k', Object.create({ iffVersion: 0 })))));
  await assert.rejects(c.fetch('k', () => 1, Object.create({ tll: 10 })), isInvalid('tll'));
  await assert.rejects(c.getOrLoad('k', () => 1, Object.create({ tll: 10 })), isInvalid('tll'));
  assert.equal(c.has('k'), false);
});

test('an inherited or getter ttl of a call is honoured', () => {
  const clock = new ManualClock();
  const c = new Cache({ clock });
  c.set('inherited', 1, Object.create({ ttl: 1000 }));
  c.set('getter', 1, new (class {
    get ttl() {
      return 1000;
    }
  })());
  c.set('kept', 1);
  // setIfVersion passes its options on to set: an inherited ttl survives that
  c.setIfVersion('versioned', 1, 0, Object.create({ ttl: 1000 }));
  assert.equal(c.get('versioned'), 1);
  clock.advance(2000);
  assert.equal(c.get('inherited'), undefined);
  assert.equal(c.get('getter'), undefined);
  assert.equal(c.get('versioned'), undefined);
  assert.equal(c.get('kept'), 1);
  assert.ok(isInvalid('tll')(thrown(() => c.setIfVersion('v2', 1, 0, Object.create({ tll: 1000 })))));
});

test('inherited healing settings are read and checked as own ones', () => {
  const c = new Cache({ healing: Object.create({ sampleRate: 0.5 }) });
  assert.equal(c.healingConfig().sampleRate, 0.5);
  const e = thrown(() => new Cache({ healing: Object.create({ sampleRatee: 0.5 }) }));
  assert.ok(isInvalid('healing.sampleRatee')(e), String(e));
  assert.ok(isInvalid('healing.sampleRatee')(thrown(() => c.setHealing(Object.create({ sampleRatee: 0.5 })))));
});

test('registerSource reads inherited options and refuses an inherited misspelling', () => {
  const c = new Cache();
  const compare = () => true;
  c.registerSource('a:', () => 1, Object.create({ compare }));
  assert.equal(thrown(() => c.registerSource('b:', () => 1, Object.create({ compair: compare }))).field, 'compair');
});
