// Registry of built-in stage kinds (`uses: <name>`): one folder per kind, params schema beside the
// code. The CLI hands this registry to the engine (cli/session.ts).
import type { StageKind } from '../engine/contract.js';
import { decodeStage } from './decode/decode.js';
import { normalizeStage } from './normalize/normalize.js';
import { augmentKind } from './augment/augment.js';
import { trainStage } from './train/train.js';
import { evaluateStage } from './evaluate/evaluate.js';
import { fetchStage } from './fetch/fetch.js';
import { reportStage } from './report/report.js';

export const builtinKinds: ReadonlyMap<string, StageKind> = new Map<string, StageKind>(
  ([decodeStage, normalizeStage, augmentKind, trainStage, evaluateStage, fetchStage, reportStage] as StageKind[]).map((k) => [k.name, k]),
);
