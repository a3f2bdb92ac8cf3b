// What the app's pages show, read from the store (read-only): the runs table, one run's page (its
// DAG, stage states, reasons and outputs), two or more runs compared, the model registry and the
// schedule. Every function returns plain JSON for the browser.
import { existsSync } from 'node:fs';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Session } from '../engine/session.js';
import { RUN_ID, type RunRecord } from '../engine/store/runs.js';
import type { Manifest } from '../engine/store/manifest.js';
import { paramChanges, runMetrics } from '../engine/experiments/table.js';
import { lastTicks } from '../engine/schedule/catchup.js';
import { nextFireTimes } from '../engine/schedule/scheduler.js';
import { liveEventsFile, type LiveEvent } from '../engine/store/live-events.js';
import { stageLogDir } from '../engine/store/stage-logs.js';
import { HISTORY_DIR, modelsDir, readCurrentModel, readModelInfo, type ModelInfo } from '../lib/champion.js';
import { classDeltas } from '../lib/report/assemble.js';
import type { ClassMetricsRecord, HistoryRecord } from '../lib/report/records.js';

const PULLED_REASON = 'pulled from the remote';
/** How much of events.jsonl holds its first line, the planned DAG. */
const PLAN_LINE_MAX = 256 * 1024;

/** Metrics shown in the runs table (the first found of each stage). */
const HEADLINE = ['test_accuracy', 'test_loss'];

export interface RunRow {
  id: string;
  startedAt: string;
  durationMs?: number;
  outcome: string;
  trigger: string;
  /** A sweep's experiment: the sweep's id (its experiments are compared together). */
  sweep?: string;
  command: string;
  counts: { ran: number; cached: number; pulled: number; failed: number; skipped: number };
  metrics: Record<string, number>;
}

/** A record still `running` whose process is gone was killed (as `pipeline runs` says). */
export function outcomeOf(r: RunRecord): string {
  if (r.outcome !== 'running') return r.outcome;
  try {
    process.kill(r.pid, 0);
    return 'running';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? 'running' : 'killed';
  }
}

function triggerOf(r: RunRecord): string {
  if (r.trigger) return `schedule ${r.trigger.entry}`;
  if (r.experiment) return `sweep ${r.experiment.sweep} (${r.experiment.index}/${r.experiment.of})`;
  return 'command line';
}

export class UiData {
  private readonly manifests = new Map<string, Manifest | null>();

  constructor(readonly session: Session) {}

  get store() {
    return this.session.store;
  }

  async records(): Promise<RunRecord[]> {
    return (await this.store.runs.list()).reverse();
  }

  /** Run `id`'s record (a run id, never a path), or undefined. */
  async record(id: string): Promise<RunRecord | undefined> {
    if (!RUN_ID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.store.runs.dir, `${id}.json`), 'utf8')) as RunRecord;
    } catch {
      return undefined;
    }
  }

  async manifest(key: string): Promise<Manifest | null> {
    if (!/^[0-9a-f]{8,128}$/.test(key)) return null;
    if (!this.manifests.has(key)) this.manifests.set(key, await this.store.readManifest(key));
    return this.manifests.get(key) ?? null;
  }

  async runRows(): Promise<RunRow[]> {
    const rows: RunRow[] = [];
    for (const r of await this.records()) {
      const { metrics } = await runMetrics(this.store, r, this.manifests);
      const headline: Record<string, number> = {};
      for (const [stage, values] of metrics)
        for (const name of HEADLINE) {
          const v = values.get(name);
          if (v !== undefined) headline[`${stage}.${name}`] = v;
        }
      const count = (o: string) => r.stages.filter((s) => s.outcome === o).length;
      // A result downloaded from the remote cache is recorded as cached, with this reason (engine/run/sources/remote.ts).
      const pulled = r.stages.filter((s) => s.outcome === 'cached' && s.reason === PULLED_REASON).length;
      rows.push({
        id: r.id,
        startedAt: r.startedAt,
        durationMs: r.durationMs,
        outcome: outcomeOf(r),
        trigger: triggerOf(r),
        ...(r.experiment ? { sweep: r.experiment.sweep } : {}),
        command: ['pipeline', ...r.command].join(' '),
        counts: {
          ran: count('ran'),
          cached: count('cached') - pulled,
          pulled,
          failed: count('failed'),
          skipped: count('skipped'),
        },
        metrics: headline,
      });
    }
    return rows;
  }

  /** One run: its record, the DAG (as planned in its events, else the current pipeline), each stage's outputs and kept logs. */
  async runPage(r: RunRecord) {
    const graph =
      (await this.plannedGraph(r.id)) ?? [...this.session.pipeline.stages.values()].map((s) => ({ name: s.name, kind: s.kind, needs: [...s.needs] }));
    const outputs: Record<string, { key: string; files: { path: string; size: number }[] }> = {};
    for (const s of r.stages) {
      const m = s.key ? await this.manifest(s.key) : null;
      if (m) outputs[s.stage] = { key: m.key, files: Object.entries(m.files).map(([path, f]) => ({ path, size: f.size })) };
    }
    let logs: string[] = [];
    try {
      logs = (await readdir(stageLogDir(this.store.runs.dir, r.id))).filter((n) => n.endsWith('.log'));
    } catch {
      // no kept logs (an older run, or nothing ran)
    }
    const report = r.stages.find((s) => s.key && outputs[s.stage]?.files.some((f) => f.path === 'index.html'));
    return {
      record: { ...r, outcome: outcomeOf(r) },
      graph,
      outputs,
      logs,
      report: report ? { key: report.key, stage: report.stage } : undefined,
    };
  }

  /** Runs side by side: params that differ (against the first), metrics, learning curves, per-class F1 deltas. */
  async compare(records: RunRecord[]) {
    const [base] = records;
    const params = records
      .slice(1)
      .flatMap((r) => (base!.effective && r.effective ? paramChanges(base!.effective, r.effective).map((c) => ({ ...c, run: r.id })) : []));
    const metricsByRun: Record<string, Record<string, number>> = {};
    const curves: { run: string; stage: string; epoch: number; metric: string; value: number }[] = [];
    const perClass = new Map<string, ClassMetricsRecord[]>();
    for (const r of records) {
      const { metrics } = await runMetrics(this.store, r, this.manifests);
      metricsByRun[r.id] = {};
      for (const [stage, values] of metrics) for (const [k, v] of values) metricsByRun[r.id]![`${stage}.${k}`] = v;
      for (const s of r.stages) {
        const m = s.key ? await this.manifest(s.key) : null;
        if (!m) continue;
        const history = await this.readJson<HistoryRecord>(m, 'history.json');
        if (history)
          for (const metric of ['loss', 'acc', 'val_loss', 'val_acc'] as const)
            (history[metric] ?? []).forEach((v, i) => {
              if (typeof v === 'number') curves.push({ run: r.id, stage: s.stage, epoch: history.epoch[i] ?? i + 1, metric, value: v });
            });
        const evaluated = await this.readJson<{ per_class?: ClassMetricsRecord[] }>(m, 'metrics.json');
        if (evaluated?.per_class && !perClass.has(r.id)) perClass.set(r.id, evaluated.per_class);
      }
    }
    const metricNames = [...new Set(Object.values(metricsByRun).flatMap((m) => Object.keys(m)))].sort();
    const basePerClass = perClass.get(base!.id);
    const deltas = records
      .slice(1)
      .filter((r) => basePerClass && perClass.has(r.id))
      .map((r) => ({ run: r.id, deltas: classDeltas(basePerClass!, perClass.get(r.id)!) }));
    return {
      runs: records.map((r) => r.id),
      params,
      metrics: metricNames.map((name) => ({ name, values: records.map((r) => metricsByRun[r.id]![name] ?? null) })),
      curves,
      deltas,
    };
  }

  async models() {
    const root = this.session.pipeline.root;
    const current = await readCurrentModel(root);
    const history: ModelInfo[] = [];
    try {
      for (const id of await readdir(join(modelsDir(root), HISTORY_DIR))) {
        if (id.startsWith('.')) continue;
        try {
          history.push(await readModelInfo(join(modelsDir(root), HISTORY_DIR, id)));
        } catch {
          // not a model directory of ours
        }
      }
    } catch {
      // nothing promoted yet
    }
    history.sort((a, b) => b.promotedAt.localeCompare(a.promotedAt));
    const trainStage = this.session.pipeline.promote?.train;
    const candidates = (await this.records())
      .filter((r) => trainStage && r.stages.some((s) => s.stage === trainStage && s.key && (s.outcome === 'ran' || s.outcome === 'cached')))
      .map((r) => r.id);
    return { current: current?.info, history, candidates, trainStage };
  }

  async schedule() {
    const entries = this.session.pipeline.schedule ?? [];
    const records = await this.records();
    const last = lastTicks(records);
    return entries.map((e) => {
      const ticks = records.filter((r) => r.trigger?.type === 'schedule' && r.trigger.entry === e.name);
      const lastRun = ticks.find((r) => r.trigger?.result !== 'skipped');
      return {
        name: e.name,
        cron: e.cron,
        timezone: e.timezone,
        stages: e.stages,
        next: nextFireTimes(e, 3).map((d) => d.toISOString()),
        lastTick: last.get(e.name)?.toISOString(),
        lastOutcome: lastRun ? { run: lastRun.id, result: lastRun.trigger?.result ?? outcomeOf(lastRun) } : undefined,
        skipped: ticks.filter((r) => r.trigger?.result === 'skipped').map((r) => ({ run: r.id, firedAt: r.trigger!.firedAt, note: r.trigger!.note })),
      };
    });
  }

  /** The DAG the run planned (the first line of its events), if it wrote one: what it ran, even if pipeline.yaml changed since. */
  private async plannedGraph(id: string): Promise<{ name: string; kind: string; needs: string[] }[] | undefined> {
    let handle;
    try {
      handle = await open(liveEventsFile(this.store.runs.dir, id), 'r');
    } catch {
      return undefined;
    }
    try {
      const buffer = Buffer.alloc(PLAN_LINE_MAX);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      const line = buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0]!;
      const first = JSON.parse(line) as LiveEvent;
      return first.type === 'plan' ? first.stages : undefined;
    } catch {
      return undefined; // torn or longer than we read: the current pipeline's graph will do
    } finally {
      await handle.close();
    }
  }

  private async readJson<T>(m: Manifest, name: string): Promise<T | undefined> {
    const f = m.files[name];
    if (!f) return undefined;
    const path = this.store.objects.path(f.digest);
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch {
      return undefined;
    }
  }
}
