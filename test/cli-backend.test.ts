// `--backend` sets the backend param of every stage that has one (train, evaluate), as --set would.
import { describe, expect, test } from '@jest/globals';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openSession } from '../engine/session.js';
import { builtinKinds } from '../stages/index.js';
import { runCli, workspace } from './helpers/cli.js';

const PIPELINE = `
stages:
  fetch:
    uses: fetch
    with: {url: data.txt}
  decode:
    uses: decode
    needs: [fetch]
  normalize:
    uses: normalize
    needs: [decode]
  train:
    uses: train
    needs: [normalize]
    with: {backend: wasm}
  evaluate:
    uses: evaluate
    needs: [train, normalize]
`;

describe('--backend', () => {
  test('overrides the backend param of train and evaluate; an explicit --set still wins', async () => {
    const cwd = await workspace(PIPELINE);
    try {
      const file = join(cwd, 'pipeline.yaml');
      const backends = async (options: { backend?: string; sets?: string[] }) => {
        const { pipeline } = await openSession(file, { ...options, kinds: builtinKinds });
        return Object.fromEntries([...pipeline.stages.values()].map((s) => [s.name, s.params.backend]));
      };
      expect(await backends({})).toEqual({ fetch: undefined, decode: undefined, normalize: undefined, train: 'wasm', evaluate: 'auto' });
      expect(await backends({ backend: 'cpu' })).toEqual({ fetch: undefined, decode: undefined, normalize: undefined, train: 'cpu', evaluate: 'cpu' });
      expect((await backends({ backend: 'cpu', sets: ['evaluate.backend=wasm'] })).evaluate).toBe('wasm');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  test('the CLI accepts it on any command and rejects unknown backends with exit 2', async () => {
    const cwd = await workspace(PIPELINE);
    try {
      expect((await runCli(['status', '--backend', 'cpu'], { cwd })).code).toBe(0);
      const bad = await runCli(['status', '--backend', 'gpu'], { cwd });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("argument 'gpu' is invalid");
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
