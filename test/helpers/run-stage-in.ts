// Like stage-context's runStage, but the stage writes into a directory the test chose, so a run
// that throws leaves nothing behind once the test removes that directory.
import type { StageContext, StageKind } from '../../engine/contract.js';
import { dirWriter, fakeInputs, quietLogger, quietProgress, testPools, type FakeUpstream } from './stage-context.js';

export async function runStageIn(
  outDir: string,
  resumeDir: string,
  kind: StageKind,
  rawParams: unknown,
  inputs: Record<string, FakeUpstream> = {},
  signal: AbortSignal = new AbortController().signal,
): Promise<void> {
  const pools = testPools();
  const ctx: StageContext<unknown> = {
    stage: kind.name,
    params: kind.params.parse(rawParams),
    root: process.cwd(),
    inputs: fakeInputs(inputs),
    out: dirWriter(outDir),
    resumeDir,
    log: quietLogger,
    progress: quietProgress,
    signal,
    workers: pools,
    fingerprint: {},
  };
  try {
    await kind.run(ctx);
  } finally {
    await pools.destroy();
  }
}
