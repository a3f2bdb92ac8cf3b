// The `schedule:` and `promote:` sections of pipeline.yaml: checked against their zod schemas, then
// against the stages (names exist, overrides parse, cron expressions and time zones are valid), and
// turned into the resolved forms the scheduler (engine/schedule/) and promotion (engine/promote/) use.
import { Cron } from 'croner';
import type { z } from 'zod';
import { durationMs, promoteSchema, retentionSchema, scheduleEntrySchema, type Hook } from './schema.js';
import type { SourceLocation } from '../errors.js';
import { parseSet } from './overrides.js';
import { didYouMean } from './suggest.js';
import type { DocPath } from './yaml-locations.js';

export interface ScheduleEntry {
  name: string;
  cron: string;
  timezone?: string;
  /** Stages to run (empty: all). */
  stages: string[];
  /** `--set` overrides for this entry's runs. */
  sets: string[];
  onSuccess: Hook[];
  onFailure: Hook[];
  /** Run the most recent missed tick once at start, after downtime. */
  catchup: boolean;
  /** Notify on_failure when a tick is skipped because the previous run has been going longer than this. */
  skipAlertAfterMs?: number;
  loc: SourceLocation;
}

/** `retention:`: which run records `pipeline schedule` keeps after each tick. */
export interface RetentionSpec {
  keepRuns?: number;
  keepDays?: number;
}

export interface PromoteSpec {
  /** Stage whose metrics.json judges the model. */
  evaluate: string;
  /** Stage whose model/ is promoted. */
  train: string;
  /** Dotted path of the metric in metrics.json. */
  metric: string;
  mode: 'max' | 'min';
  minDelta: number;
  loc: SourceLocation;
}

/** What validation needs to know of each stage. */
export interface StageFacts {
  kind?: string;
  params?: Record<string, unknown>;
  /** Direct upstream stages. */
  needs: readonly string[];
  /** Whether `with:` params can be set (uses: stages). */
  hasParams: boolean;
}

/** The parts of the validation (config/parse.ts) this check reports through. */
export interface Reporter {
  value(path: DocPath, message: string): void;
  key(path: DocPath, message: string): void;
  issues(issues: readonly z.core.$ZodIssue[], data: unknown, base: DocPath, label: string): void;
  location(path: DocPath): SourceLocation;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Croner reads 5 fields as minute-level and 6 as second-level; names like @daily work too. */
export function checkCron(expression: string, timezone?: string): string | undefined {
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      return `unknown time zone '${timezone}' (expected an IANA name such as Europe/Paris or UTC)`;
    }
  }
  try {
    const cron = new Cron(expression, { paused: true, timezone });
    cron.stop();
  } catch (err) {
    return `invalid cron expression '${expression}': ${(err as Error).message}`;
  }
  return undefined;
}

/** Checks the sections and returns their resolved forms (undefined/empty where invalid). */
export function checkAutomation(
  r: Reporter,
  root: Record<string, unknown>,
  stages: ReadonlyMap<string, StageFacts>,
): { schedule: ScheduleEntry[]; promote?: PromoteSpec; retention?: RetentionSpec } {
  const names = [...stages.keys()];
  const unknownStage = (path: DocPath, label: string, name: string) => {
    if (!stages.has(name)) r.value(path, `${label}: unknown stage '${name}'${didYouMean(name, names)}`);
    return !stages.has(name);
  };
  const schedule: ScheduleEntry[] = [];

  if (root.schedule !== undefined && root.schedule !== null) {
    if (!isRecord(root.schedule)) r.key(['schedule'], 'schedule: must be a map of entry names to entries (cron:, stages:, set:...)');
    else {
      for (const [name, raw] of Object.entries(root.schedule)) {
        const base: DocPath = ['schedule', name];
        const label = `schedule '${name}'`;
        const parsed = scheduleEntrySchema.safeParse(raw);
        if (!parsed.success) {
          reportUnknownKeys(r, parsed.error.issues, base, label, Object.keys(scheduleEntrySchema.shape));
          r.issues(parsed.error.issues, raw, base, label);
          continue;
        }
        const e = parsed.data;
        let ok = true;
        const cronProblem = checkCron(e.cron, e.timezone);
        if (cronProblem) {
          ok = false;
          r.value([...base, cronProblem.startsWith('unknown time zone') ? 'timezone' : 'cron'], `${label}: ${cronProblem}`);
        }
        (e.stages ?? []).forEach((s, i) => {
          if (unknownStage([...base, 'stages', i], label, s)) ok = false;
        });
        (e.set ?? []).forEach((text, i) => {
          const at: DocPath = [...base, 'set', i];
          try {
            const set = parseSet(text);
            if (set.target !== 'params') {
              if (unknownStage(at, `${label}: set ${text}`, set.target)) ok = false;
              else if (!stages.get(set.target)!.hasParams) {
                ok = false;
                r.value(at, `${label}: set ${text}: stage '${set.target}' is a cmd: stage; only uses: stages have params to set`);
              }
            }
          } catch (err) {
            ok = false;
            r.value(at, `${label}: ${(err as Error).message.replace(/^--set /, 'set ')}`);
          }
        });
        if (!ok) continue;
        const list = (h: Hook | Hook[] | undefined): Hook[] => (h === undefined ? [] : Array.isArray(h) ? h : [h]);
        schedule.push({
          name,
          cron: e.cron,
          ...(e.timezone !== undefined ? { timezone: e.timezone } : {}),
          stages: e.stages ?? [],
          sets: e.set ?? [],
          onSuccess: list(e.on_success),
          onFailure: list(e.on_failure),
          catchup: e.catchup ?? false,
          ...(e.skip_alert_after !== undefined ? { skipAlertAfterMs: durationMs(e.skip_alert_after) } : {}),
          loc: r.location(base),
        });
      }
    }
  }

  let promote: PromoteSpec | undefined;
  if (root.promote !== undefined && root.promote !== null) {
    const base: DocPath = ['promote'];
    const label = 'promote';
    const parsed = promoteSchema.safeParse(root.promote);
    if (!parsed.success) {
      reportUnknownKeys(r, parsed.error.issues, base, label, Object.keys(promoteSchema.shape));
      r.issues(parsed.error.issues, root.promote, base, label);
    } else {
      const p = parsed.data;
      const evaluateBad = unknownStage([...base, 'evaluate'], label, p.evaluate);
      let train = p.train;
      if (!evaluateBad && train === undefined) {
        const ev = stages.get(p.evaluate)!;
        const named = typeof ev.params?.model === 'string' ? ev.params.model : undefined;
        const trainUps = ev.needs.filter((n) => stages.get(n)?.kind === 'train');
        train = named ?? (trainUps.length === 1 ? trainUps[0] : undefined);
        if (train === undefined)
          r.value(base, `${label}: name the stage whose model is promoted (train: STAGE); '${p.evaluate}' has ${trainUps.length} train inputs`);
      }
      const trainBad = train !== undefined && p.train !== undefined && unknownStage([...base, 'train'], label, train);
      if (!evaluateBad && !trainBad && train !== undefined) {
        if (!stages.get(p.evaluate)!.needs.includes(train)) {
          r.value([...base, 'evaluate'], `${label}: stage '${p.evaluate}' does not take '${train}' as an input, so its metrics do not judge that model`);
        } else {
          promote = {
            evaluate: p.evaluate,
            train,
            metric: p.metric,
            mode: p.mode ?? (/loss/i.test(p.metric) ? 'min' : 'max'),
            minDelta: p.min_delta,
            loc: r.location(base),
          };
        }
      }
    }
  }
  let retention: RetentionSpec | undefined;
  if (root.retention !== undefined && root.retention !== null) {
    const parsed = retentionSchema.safeParse(root.retention);
    if (!parsed.success) {
      reportUnknownKeys(r, parsed.error.issues, ['retention'], 'retention', Object.keys(retentionSchema.shape));
      r.issues(parsed.error.issues, root.retention, ['retention'], 'retention');
    } else if (parsed.data.keep_runs === undefined && parsed.data.keep_days === undefined) {
      r.value(['retention'], 'retention: give keep_runs:, keep_days: or both');
    } else {
      const { keep_runs, keep_days } = parsed.data;
      retention = { ...(keep_runs !== undefined ? { keepRuns: keep_runs } : {}), ...(keep_days !== undefined ? { keepDays: keep_days } : {}) };
    }
  }
  return { schedule, promote, retention };
}

function reportUnknownKeys(r: Reporter, issues: readonly z.core.$ZodIssue[], base: DocPath, label: string, allowed: string[]): void {
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    for (const key of issue.keys) {
      const hint = path.length === 0 ? didYouMean(key, allowed) || ` (allowed: ${allowed.join(', ')})` : '';
      r.key([...base, ...path, key], `${label}: unknown key '${[...path, key].join('.')}'${hint}`);
    }
  }
}
