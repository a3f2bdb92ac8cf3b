// What `pipeline run` prints after the stage lines: the headline metrics of every evaluate stage
// and where each report is, so a run ends with the numbers and a page to open.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StageReport } from '../engine/run/execute.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import type { Store } from '../engine/store/store.js';
import { shown } from './stage-lines.js';

interface HeadlineMetrics {
  model_stage?: string;
  test_accuracy?: number;
  test_loss?: number;
}

export async function runResultLines(pipeline: Pipeline, store: Store, reports: readonly StageReport[]): Promise<string[]> {
  const done = reports.filter((r) => (r.outcome === 'ran' || r.outcome === 'cached') && r.manifest);
  const lines: string[] = [];
  const width = Math.max(0, ...done.map((r) => r.stage.length));
  for (const r of done) {
    if (pipeline.stages.get(r.stage)?.kind !== 'evaluate') continue;
    const file = r.manifest!.files['metrics.json'];
    if (!file) continue;
    try {
      const m = JSON.parse(await readFile(store.objects.path(file.digest), 'utf8')) as HeadlineMetrics;
      if (typeof m.test_accuracy !== 'number' || typeof m.test_loss !== 'number') continue;
      lines.push(
        `${r.stage.padEnd(width)}  Test accuracy ${m.test_accuracy.toFixed(4)}  Test score ${m.test_loss.toFixed(4)}${m.model_stage ? `  (${m.model_stage})` : ''}`,
      );
    } catch {
      // A metrics file that cannot be read is `verify`'s business, not the run summary's.
    }
  }
  for (const r of done) {
    if (pipeline.stages.get(r.stage)?.kind !== 'report' || !r.manifest!.files['index.html']) continue;
    lines.push(`report: ${shown(join(store.stageLinkPath(r.stage), 'index.html'))}`);
  }
  return lines;
}
