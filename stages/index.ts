// Registry of built-in stage kinds (`uses: <name>`). One module per kind, params schema beside the code.
import type { StageKind } from '../engine/contract.js';
import { decodeStage } from './decode.js';
import { normalizeStage } from './normalize.js';
import { augmentKind } from './augment.js';
import { trainStage } from './train.js';
import { evaluateStage } from './evaluate.js';
import { fetchStage } from './fetch.js';
import { reportStage } from './report.js';

export const builtinKinds: ReadonlyMap<string, StageKind> = new Map<string, StageKind>(
  ([
    decodeStage,
    normalizeStage,
    augmentKind,
    trainStage,
    evaluateStage,
    fetchStage,
    reportStage,
  ] as StageKind[]).map((k) => [k.name, k]),
);
