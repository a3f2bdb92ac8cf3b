// Type-aware lint (typescript-eslint), run by `npm run lint` beside the layer rules
// (.dependency-cruiser.cjs): a promise nobody awaits or handles loses its error and its ordering
// (a rejected write goes unreported, a cleanup runs before the work ends), and an async function
// where a plain callback is expected is a promise nobody awaits. Fire-and-forget is written
// `void promise`, with a comment saying why nothing waits for it.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // AssemblyScript (wasm/) is not TypeScript that tsc checks; the rest are outputs and installs.
  { ignores: ['dist/', 'node_modules/', 'artifacts/', 'models/', 'test-artifacts/', 'coverage/', 'wasm/', 'examples/', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
);
