// Naming a past run on the command line: its full id, a unique prefix of it, or `latest`.
import { UsageError } from '../engine/errors.js';
import type { RunRecord } from '../engine/store/runs.js';

/** The run `text` names among `records` (oldest first); `accept` narrows what `latest` may pick. */
export function findRun(records: readonly RunRecord[], text: string, accept: (r: RunRecord) => boolean = () => true): RunRecord {
  if (text === 'latest') {
    const found = [...records].reverse().find(accept);
    if (!found) throw new UsageError('no run yet that fits (pipeline runs lists them)');
    return found;
  }
  const exact = records.find((r) => r.id === text);
  if (exact) return exact;
  const matches = records.filter((r) => r.id.startsWith(text));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new UsageError(`no run '${text}' (pipeline runs lists them)`);
  throw new UsageError(
    `'${text}' names ${matches.length} runs: ${matches
      .slice(0, 3)
      .map((r) => r.id)
      .join(', ')}...; give more of the id`,
  );
}
