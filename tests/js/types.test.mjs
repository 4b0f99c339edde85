// The shipped typings compile against a small typed example with tsc --noEmit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('index.d.ts and wasm typings compile with tsc --noEmit', () => {
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tests/js/types'], {
      cwd: root,
      encoding: 'utf8',
    });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});

// Every ```js block of the README, type-checked as the user's code it is (`checkJs` under
// `--strict`) against the shipped typings, resolved the way a user resolves them: `healcache` by
// the package's own `exports` (a self-reference from inside the package). Plain JavaScript has
// no annotations to give, so `noImplicitAny` is the one strict check left out; wrong names,
// options, arguments and uses of what the API returns are all errors. Node's own modules have no
// typings here (no @types/node): the one the blocks use gets a minimal declaration, as does the
// `.wasm` import of the worker block (a bundler's or runtime's module import).
test('the README js blocks pass tsc --strict against the shipped typings', async () => {
  const { mkdirSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...text.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => ({
    line: text.slice(0, m.index).split('\n').length,
    src: m[1],
  }));
  assert.ok(blocks.length >= 2, 'the README has js blocks');
  const dir = join(root, 'tests/js', `.types-readme-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const files = blocks.map((b) => {
      const file = `readme-${b.line}.mjs`;
      writeFileSync(join(dir, file), b.src);
      return file;
    });
    writeFileSync(
      join(dir, 'node-shim.d.ts'),
      `declare module 'node:assert/strict' {
  function assert(value: unknown, message?: string): asserts value;
  namespace assert {
    function ok(value: unknown, message?: string): asserts value;
    function equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
  }
  export default assert;
}
declare module 'healcache/wasm/healcache_wasm_bg.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
`,
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          lib: ['es2022', 'dom'],
          types: [],
          strict: true,
          noImplicitAny: false,
          allowJs: true,
          checkJs: true,
          noEmit: true,
          skipLibCheck: false,
        },
        files: ['node-shim.d.ts', ...files],
      }),
    );
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: root, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`tsc --strict failed on README.md js blocks (file readme-<line>.mjs):\n${e.stdout}${e.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The typings against what the runtime takes and gives, name by name: the options `new Cache`
// takes (the core's settings table with its JS names, and the wrapper's own), the `healing`
// settings (`new Cache({ healing })`, `setHealing`), the names `configSet`/`configGet` take and
// the keys and value types `healingConfig()` returns. Each name is asked of the runtime itself
// (a name it does not know is refused); the candidates are the backend's table in every spelling
// and the names the runtime lists. The shipped declarations are shared by Node and WASM: on Node
// they must match exactly, on WASM (no shared tier: no fleet settings) declare all it takes.
test('the typings declare exactly the options, setting names and healingConfig keys the runtime takes', async () => {
  const { mkdirSync, rmSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { createRequire } = await import('node:module');
  const { Cache, WASM } = await import('./helpers.mjs');
  const require = createRequire(import.meta.url);
  const raw = WASM ? require(join(root, 'bindings-wasm/pkg-node/healcache_wasm.js')) : require(join(root, 'dist/healcache.node'));
  const table = raw.settings();
  const refusedAs = (f, field, pattern) => {
    try {
      f();
      return false;
    } catch (e) {
      return e.code === 'InvalidConfig' && e.field === field && pattern.test(e.message);
    }
  };
  // every option name the wrapper lists besides the table's
  let listed = [];
  try {
    new Cache({ '?': 1 });
  } catch (e) {
    listed = /known: ([^)]*)\)/.exec(e.message)[1].split(', ');
  }
  const c = new Cache();
  const config = c.healingConfig();
  const candidates = [...new Set([...table.flatMap((s) => [s.name, s.jsName, ...s.aliases]), ...listed, ...Object.keys(config)])];
  candidates.push(...candidates.filter((n) => !n.endsWith('Ms')).map((n) => `${n}Ms`)); // former JS spellings
  const cacheOptions = candidates.filter((n) => !refusedAs(() => new Cache({ [n]: undefined }), n, /is not an option/));
  const healingOptions = candidates.filter((n) => !refusedAs(() => new Cache({ healing: { [n]: undefined } }), `healing.${n}`, /is not a healing setting/));
  const settingNames = candidates.filter((n) => !refusedAs(() => c.configGet(n), 'name', /unknown setting/));
  c.close();
  assert.ok(cacheOptions.includes('maxEntries') && healingOptions.includes('sampleRate') && settingNames.includes('sample_rate'));
  const flag = (n) => table.find((s) => [s.name, s.jsName, ...s.aliases].includes(n))?.flag;
  const union = (names) => (names.length === 0 ? 'never' : names.map((n) => JSON.stringify(n)).join(' | '));
  const lines = [
    `import type { Cache, CacheOptions, HealingOptions, HealingSettingName } from '${WASM ? 'healcache/wasm' : 'healcache'}';`,
    'type Config = ReturnType<Cache<unknown>["healingConfig"]>;',
    'type RequiredKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? never : K }[keyof T];',
    'type None<T, What extends string> = [T] extends [never] ? true : { [K in What]: T };',
    'type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;',
  ];
  const exact = (declared, runtime, what) => {
    lines.push(`export const ${what}Undeclared: None<Exclude<${union(runtime)}, ${declared}>, 'takenButNotDeclared'> = true;`);
    // the Node package has every setting: a declared name it refuses is a wrong declaration
    if (!WASM) lines.push(`export const ${what}Refused: None<Exclude<${declared}, ${union(runtime)}>, 'declaredButRefused'> = true;`);
  };
  exact('keyof CacheOptions', cacheOptions, 'cacheOptions');
  exact('keyof HealingOptions', healingOptions, 'healingOptions');
  exact('HealingSettingName', settingNames, 'settingNames');
  exact('keyof Config', Object.keys(config), 'healingConfig');
  // every key the declaration says is always there is returned (the fleet's only where a shared tier can be)
  lines.push(`export const healingConfigRequired: None<Exclude<RequiredKeys<Config>, ${union(Object.keys(config))}>, 'declaredButNotReturned'> = true;`);
  for (const [n, v] of Object.entries(config)) {
    lines.push(`export const config_${n}: Same<Required<Config>[${JSON.stringify(n)}], ${typeof v}> = true;`);
  }
  for (const [names, type] of [[cacheOptions, 'CacheOptions'], [healingOptions, 'HealingOptions']]) {
    for (const n of names) {
      const f = flag(n);
      if (f === true) lines.push(`export const ${type}_${n}: Same<NonNullable<${type}[${JSON.stringify(n)}]>, boolean> = true;`);
      if (f === false) lines.push(`export const ${type}_${n}: number extends NonNullable<${type}[${JSON.stringify(n)}]> ? true : false = true;`);
    }
  }
  const dir = join(root, 'tests/js', `.types-surface-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, 'surface.mts'), lines.join('\n') + '\n');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom'], types: [], strict: true, noEmit: true },
        files: ['surface.mts'],
      }),
    );
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: root, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`the typings and the runtime differ (${WASM ? 'WASM' : 'Node'}):\n${e.stdout}${e.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
