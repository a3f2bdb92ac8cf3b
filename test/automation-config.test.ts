// The schedule: and promote: sections of pipeline.yaml: resolved forms, every validation error
// with its location, and the scheduler's next-fire arithmetic (croner).
import { describe, expect, test } from '@jest/globals';
import { parsePipeline } from '../engine/config/parse.js';
import { ConfigErrors } from '../engine/errors.js';
import type { Pipeline } from '../engine/config/pipeline.js';
import { nextDue, nextFireTimes } from '../engine/schedule/scheduler.js';
import { fakeKinds } from './helpers/fake-kinds.js';

const parse = (text: string): Pipeline => parsePipeline(text, { file: '/ws/pipeline.yaml', shownAs: 'pipeline.yaml', kinds: fakeKinds });

function errorsOf(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => e.message);
    throw err;
  }
  throw new Error('expected the pipeline to be rejected');
}

const STAGES = [
  'stages:',
  '  gen:',
  '    uses: source',
  '    with: {size: 3}',
  '  fit:',
  '    cmd: touch model',
  '    outs: [model]',
  '  judge:',
  '    cmd: touch metrics.json',
  '    deps: [model]',
  '    outs: [metrics.json]',
];
const yaml = (...lines: string[]) => [...STAGES, ...lines].join('\n') + '\n';

describe('schedule:', () => {
  test('entries resolve with defaults, hooks as lists', () => {
    const p = parse(
      yaml(
        'schedule:',
        '  nightly:',
        '    cron: "0 3 * * *"',
        '    timezone: Europe/Paris',
        '    stages: [judge]',
        '    set: [gen.size=5]',
        '    on_failure: {webhook: "http://127.0.0.1:1/hook"}',
        '    on_success:',
        '      - command: echo ok',
        '  often:',
        '    cron: "*/5 * * * * *"',
      ),
    );
    expect(p.schedule?.map((e) => e.name)).toEqual(['nightly', 'often']);
    const [nightly, often] = p.schedule!;
    expect(nightly).toMatchObject({ cron: '0 3 * * *', timezone: 'Europe/Paris', stages: ['judge'], sets: ['gen.size=5'] });
    expect(nightly!.onFailure).toEqual([{ webhook: 'http://127.0.0.1:1/hook' }]);
    expect(nightly!.onSuccess).toEqual([{ command: 'echo ok' }]);
    expect(often).toMatchObject({ stages: [], sets: [], onSuccess: [], onFailure: [] });
    expect(often!.loc.line).toBe(21);
  });

  test('a pipeline without the sections has neither', () => {
    const p = parse(yaml());
    expect(p.schedule).toBeUndefined();
    expect(p.promote).toBeUndefined();
  });

  test('bad cron, time zone, stage, override and key: one located error each', () => {
    const errors = errorsOf(
      yaml(
        'schedule:', //                          12
        '  a:', //                               13
        '    cron: "61 * * * *"', //             14
        '  b:', //                               15
        '    cron: "0 3 * * *"', //              16
        '    timezone: Mars/Olympus', //         17
        '  c:', //                               18
        '    cron: "@daily"', //                 19
        '    stages: [jduge]', //                20
        '    set: [fit.x=1, nope]', //           21
        '  d:', //                               22
        '    cronn: "@daily"', //                23
        '    on_failure: {email: x@y}', //       24
      ),
    );
    expect(errors).toEqual([
      expect.stringMatching(/^pipeline\.yaml:14:11: schedule 'a': invalid cron expression '61 \* \* \* \*'/),
      "pipeline.yaml:17:15: schedule 'b': unknown time zone 'Mars/Olympus' (expected an IANA name such as Europe/Paris or UTC)",
      "pipeline.yaml:20:14: schedule 'c': unknown stage 'jduge' (did you mean 'judge'?)",
      "pipeline.yaml:21:11: schedule 'c': set fit.x=1: stage 'fit' is a cmd: stage; only uses: stages have params to set",
      "pipeline.yaml:21:20: schedule 'c': set nope: expected STAGE.PARAM=VALUE or params.NAME=VALUE",
      expect.stringMatching(/^pipeline\.yaml:22:3: schedule 'd': missing key 'cron'/),
      "pipeline.yaml:23:5: schedule 'd': unknown key 'cronn' (did you mean 'cron'?)",
      expect.stringMatching(/^pipeline\.yaml:24:17: schedule 'd': on_failure/),
    ]);
  });

  test('next fire times follow the expression and its time zone', () => {
    const p = parse(
      yaml('schedule:', '  paris:', '    cron: "0 3 * * *"', '    timezone: Europe/Paris', '  utc:', '    cron: "30 1 * * *"', '    timezone: UTC'),
    );
    const from = new Date('2026-06-01T00:00:00Z');
    // 03:00 in Paris in June is 01:00 UTC (CEST).
    expect(nextFireTimes(p.schedule![0]!, 2, from).map((d) => d.toISOString())).toEqual(['2026-06-01T01:00:00.000Z', '2026-06-02T01:00:00.000Z']);
    expect(nextDue(p.schedule!, from)).toMatchObject({ entry: { name: 'paris' } });
    expect(nextDue(p.schedule!, new Date('2026-06-01T01:10:00Z'))).toMatchObject({ entry: { name: 'utc' } });
  });
});

describe('promote:', () => {
  test('resolves defaults: metric test_accuracy, max; a loss metric is minimised', () => {
    expect(parse(yaml('promote:', '  evaluate: judge', '  train: fit')).promote).toMatchObject({
      evaluate: 'judge',
      train: 'fit',
      metric: 'test_accuracy',
      mode: 'max',
      minDelta: 0,
    });
    expect(parse(yaml('promote:', '  evaluate: judge', '  train: fit', '  metric: test_loss', '  min_delta: 0.01')).promote).toMatchObject({
      mode: 'min',
      minDelta: 0.01,
    });
  });

  test('unknown stages, a train stage the evaluation does not read, bad values', () => {
    expect(errorsOf(yaml('promote:', '  evaluate: jugde', '  train: fit'))).toEqual([
      "pipeline.yaml:13:13: promote: unknown stage 'jugde' (did you mean 'judge'?)",
    ]);
    expect(errorsOf(yaml('promote:', '  evaluate: judge', '  train: gen'))).toEqual([
      "pipeline.yaml:13:13: promote: stage 'judge' does not take 'gen' as an input, so its metrics do not judge that model",
    ]);
    expect(errorsOf(yaml('promote:', '  evaluate: judge', '  train: fit', '  min_delta: -1', '  mode: up'))).toEqual([
      expect.stringMatching(/^pipeline\.yaml:15:14: promote: min_delta: /),
      expect.stringMatching(/^pipeline\.yaml:16:9: promote: mode: /),
    ]);
  });
});
