// The promotion step of `pipeline run` (when pipeline.yaml has `promote:`): decide, print the
// decision with both metrics, and hand back what goes into the run record.
import type { Session } from '../engine/session.js';
import { promoteAfterRun } from '../engine/promote/promote.js';
import type { PromotionRecord, RunRecord } from '../engine/store/runs.js';
import { errorText } from './stage-lines.js';

export function describePromotion(p: PromotionRecord): string {
  const metrics = p.candidate !== undefined || p.champion !== undefined ? ` [${p.metric}: new ${show(p.candidate)}, current ${show(p.champion)}]` : '';
  switch (p.decision) {
    case 'promoted':
      return `promote: promoted the new model to models/current (${p.current}): ${p.reason}${metrics}`;
    case 'kept':
      return `promote: kept the current model${p.current ? ` (${p.current})` : ''}: ${p.reason}${metrics}`;
    case 'skipped':
      return `promote: nothing to judge: ${p.reason}`;
    case 'error':
      return `promote: failed: ${p.reason}${metrics}`;
  }
}

const show = (n: number | null | undefined) => (n === null || n === undefined ? 'none' : String(Number(n.toPrecision(6))));

export async function promoteAndReport(session: Session, record: RunRecord): Promise<PromotionRecord> {
  let decision: PromotionRecord;
  try {
    decision = await promoteAfterRun(session.pipeline, session.store, record.id, record.stages);
  } catch (err) {
    decision = { decision: 'error', metric: session.pipeline.promote!.metric, reason: errorText(err) };
  }
  (decision.decision === 'error' ? process.stderr : process.stdout).write(describePromotion(decision) + '\n');
  return decision;
}
