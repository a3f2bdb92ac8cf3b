// Prometheus metrics of `pipeline schedule` on the built CLI: the endpoint on a loopback port
// (--metrics-port 0 picks a free one) and the node_exporter textfile (--metrics-file), parsed as
// Prometheus text, with values matching the run records of what ran.
import { afterAll, describe, expect, test } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, workspace } from './helpers/cli.js';
import type { RunRecord } from '../engine/store/runs.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format (samples only; # HELP / # TYPE lines are checked apart). */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

const value = (samples: Sample[], name: string, labels: Record<string, string>): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

const records = async (cwd: string): Promise<RunRecord[]> =>
  (JSON.parse((await runCli(['runs', '--json', '--limit', '0'], { cwd })).stdout) as RunRecord[]).reverse();

const PIPELINE = `stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n    needs: [a]\n`;

describe('pipeline schedule --metrics-port', () => {
  test('a scrape after two ticks: runs by result, stage durations, cache hits and last success match the records', async () => {
    const cwd = await workspace(`${PIPELINE}schedule:\n  often:\n    cron: "* * * * * *"\n`, 'metrics-');
    dirs.push(cwd);
    let scraped: string | undefined;
    let output = '';
    let scraping = false;
    const result = await runCli(['schedule', '--metrics-port', '0'], {
      cwd,
      onOutput: (chunk, child: ChildProcess) => {
        output += chunk;
        const url = /^metrics on (\S+)$/m.exec(output)?.[1];
        if (scraping || !url || !/^tick often: nothing-changed /m.test(output)) return;
        scraping = true;
        void fetch(url)
          .then(async (res) => {
            expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
            scraped = await res.text();
          })
          .finally(() => child.kill('SIGTERM'));
      },
    });
    expect(result.code).toBe(0);
    expect(output).toMatch(/^metrics on http:\/\/127\.0\.0\.1:\d+\/metrics$/m);
    const samples = parsePrometheus(scraped!);
    expect(scraped).toMatch(/^# TYPE pipeline_schedule_runs_total counter$/m);
    const ran = value(samples, 'pipeline_schedule_runs_total', { entry: 'often', result: 'ran' });
    const unchanged = value(samples, 'pipeline_schedule_runs_total', { entry: 'often', result: 'nothing-changed' })!;
    expect(ran).toBe(1);
    expect(unchanged).toBeGreaterThanOrEqual(1);
    // Every tick after the first found both stages cached.
    expect(value(samples, 'pipeline_stage_cache_hits_total', { stage: 'a' })).toBe(unchanged);
    expect(value(samples, 'pipeline_stage_cache_hits_total', { stage: 'b' })).toBe(unchanged);
    expect(value(samples, 'pipeline_stage_duration_seconds_count', { stage: 'a', outcome: 'ran' })).toBe(1);
    expect(value(samples, 'pipeline_stage_duration_seconds_count', { stage: 'b', outcome: 'cached' })).toBe(unchanged);
    const all = await records(cwd);
    const first = all.find((r) => r.trigger?.result === 'ran')!;
    const ranA = first.stages.find((s) => s.stage === 'a')!;
    expect(value(samples, 'pipeline_stage_duration_seconds_sum', { stage: 'a', outcome: 'ran' })).toBeCloseTo(ranA.durationMs / 1000, 3);
    // The last success is the latest tick recorded by the time of the scrape.
    const successes = all.filter((r) => r.trigger?.result === 'ran' || r.trigger?.result === 'nothing-changed');
    const last = value(samples, 'pipeline_schedule_last_success_timestamp_seconds', { entry: 'often' })!;
    expect(successes.map((r) => Date.parse(r.finishedAt!) / 1000)).toContain(last);
    expect(successes.length).toBeGreaterThanOrEqual(ran! + unchanged);
  });

  test('--metrics-file writes the same text for node_exporter after a --once tick; a bad port is a usage error', async () => {
    const cwd = await workspace(`${PIPELINE}schedule:\n  nightly:\n    cron: "0 3 * * *"\n`, 'metrics-');
    dirs.push(cwd);
    const file = join(cwd, 'textfile', 'pipeline.prom');
    const r = await runCli(['schedule', '--once', '--metrics-file', file], { cwd });
    expect(r.code).toBe(0);
    const samples = parsePrometheus(await readFile(file, 'utf8'));
    expect(value(samples, 'pipeline_schedule_runs_total', { entry: 'nightly', result: 'ran' })).toBe(1);
    expect(value(samples, 'pipeline_stage_duration_seconds_count', { stage: 'b', outcome: 'ran' })).toBe(1);
    const [record] = await records(cwd);
    expect(value(samples, 'pipeline_schedule_last_success_timestamp_seconds', { entry: 'nightly' })).toBe(Date.parse(record!.finishedAt!) / 1000);

    const bad = await runCli(['schedule', '--once', '--metrics-port', '70000'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--metrics-port/);
  });
});
