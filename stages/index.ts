// Registry of built-in stage kinds (`uses: <name>`). One module per kind, params schema beside the code.
import type { StageKind } from '../engine/contract.js';

export const builtinKinds: ReadonlyMap<string, StageKind> = new Map<string, StageKind>(
  ([] as StageKind[]).map((k) => [k.name, k]),
);
