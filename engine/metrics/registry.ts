// What `pipeline schedule` and `pipeline worker` export for Prometheus (prom-client): runs by
// outcome, stage durations, cache hits, the queue's depth and each entry's last success time.
// Counters start at zero when the process starts, as Prometheus expects of counters.
import promClient from 'prom-client';

// prom-client is CommonJS: its classes come off the default export.
const { Counter, Gauge, Histogram, Registry } = promClient;
import type { RunRecord } from '../store/runs.js';

/** Stage durations span milliseconds (a cached stage) to hours (training). */
const DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600];

/** The queue's job counts by state, or undefined when Redis did not answer in time. */
export type QueueDepthProbe = () => Promise<Record<string, number> | undefined>;

export class PipelineMetrics {
  readonly registry = new Registry();
  private readonly runs = new Counter({
    name: 'pipeline_schedule_runs_total',
    help: 'Scheduled ticks by entry and result (ran, nothing-changed, failed, interrupted, skipped)',
    labelNames: ['entry', 'result'] as const,
    registers: [this.registry],
  });
  private readonly stageSeconds = new Histogram({
    name: 'pipeline_stage_duration_seconds',
    help: 'Stage durations by stage and outcome (ran, cached, failed, aborted; on a worker: computed, found, failed)',
    labelNames: ['stage', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly cacheHits = new Counter({
    name: 'pipeline_stage_cache_hits_total',
    help: 'Stages whose result was found instead of computed (cached here, or already on the remote for a worker)',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  private readonly lastSuccess = new Gauge({
    name: 'pipeline_schedule_last_success_timestamp_seconds',
    help: 'When the last successful run of each entry finished (Unix time)',
    labelNames: ['entry'] as const,
    registers: [this.registry],
  });
  private readonly jobs = new Counter({
    name: 'pipeline_worker_jobs_total',
    help: "A worker's jobs by outcome (computed, found, failed, refused, requeued)",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor(queueDepth?: QueueDepthProbe) {
    if (!queueDepth) return;
    const depth = new Gauge({
      name: 'pipeline_queue_jobs',
      help: 'Jobs in the stage queue by state (absent when Redis does not answer)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        depth.reset();
        const counts = await queueDepth();
        for (const [state, n] of Object.entries(counts ?? {})) depth.set({ state }, n);
      },
    });
  }

  /** A scheduled tick's record, once it is final. */
  tick(entry: string, record: RunRecord): void {
    const result = record.trigger?.result ?? (record.outcome === 'ok' ? 'ran' : record.outcome);
    this.runs.inc({ entry, result });
    for (const s of record.stages) {
      if (s.outcome === 'skipped') continue;
      this.stageSeconds.observe({ stage: s.stage, outcome: s.outcome }, s.durationMs / 1000);
      if (s.outcome === 'cached') this.cacheHits.inc({ stage: s.stage });
    }
    if (result === 'ran' || result === 'nothing-changed') this.lastSuccess.set({ entry }, Date.parse(record.finishedAt ?? record.startedAt) / 1000);
  }

  /** A worker's job. */
  job(stage: string | undefined, outcome: 'computed' | 'found' | 'failed' | 'refused' | 'requeued', durationMs?: number): void {
    this.jobs.inc({ outcome });
    if (stage === undefined || durationMs === undefined) return;
    this.stageSeconds.observe({ stage, outcome }, durationMs / 1000);
    if (outcome === 'found') this.cacheHits.inc({ stage });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
