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
