// Terminal formatting helpers.
import { describe, expect, test } from '@jest/globals';
import { formatBytes, formatDuration } from '../cli/output.js';

describe('formatDuration', () => {
  test.each([
    [12, '12ms'],
    [1500, '1.5s'],
    [59_940, '59.9s'],
    [59_960, '1m00s'],
    [299_600, '5m00s'],
    [385_000, '6m25s'],
    [3_600_000, '1h00m'],
    [5_430_000, '1h30m'],
  ])('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('formatBytes', () => {
  test.each([
    [538.46, '538 B'],
    [2_100_000, '2.1 MB'],
    [491_500_000, '491.5 MB'],
  ])('%d -> %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});

describe('lines printed while a progress bar is drawn', () => {
  /** What a terminal shows for the bytes written to it: `\r` returns, `ESC[2K` erases the line. */
  function screen(bytes: string): string[] {
    const lines = [''];
    for (const part of bytes.split(/(\r|\x1b\[2K|\n)/)) {
      if (part === '\n') lines.push('');
      else if (part === '\x1b[2K') lines[lines.length - 1] = '';
      else if (part !== '\r') lines[lines.length - 1] += part;
    }
    return lines;
  }

  test('stand on their own line; the bar is drawn again below them', async () => {
    const { printLine, stageLogger, stageProgress } = await import('../cli/output.js');
    // stdout and stderr of one terminal: both write into the same screen.
    let bytes = '';
    const tty = () => ({ isTTY: true, write: (s: string) => ((bytes += s), true) }) as unknown as NodeJS.WriteStream;
    const [stdout, stderr] = [tty(), tty()];
    const ci = process.env.CI;
    delete process.env.CI; // bars are drawn on a TTY outside CI
    try {
      const train = stageProgress('train', stderr);
      train.start('epoch 1/2', 100, 'batch');
      train.update(40, 'loss 1.23');
      printLine(stdout, 'ran      augment   11.5s');
      stageLogger('augment', false, (l) => printLine(stderr, l)).info('wrote 2 copies');
      train.update(100);
      const done = stageProgress('evaluate', stderr);
      done.start('predict', 10, 'img');
      done.done();
      train.done();
    } finally {
      if (ci !== undefined) process.env.CI = ci;
    }
    const shown = screen(bytes);
    expect(shown[0]).toBe('ran      augment   11.5s');
    expect(shown[1]).toBe('[augment] wrote 2 copies');
    expect(shown[2]).toMatch(/^\[evaluate\] predict  \[=*>? *\]  0 img\/10 img/);
    expect(shown[3]).toMatch(/^\[train\] epoch 1\/2  \[========================\]  100 batch\/100 batch  .*loss 1\.23$/);
    expect(shown[4]).toBe('');
    expect(shown).toHaveLength(5);
  });
});
