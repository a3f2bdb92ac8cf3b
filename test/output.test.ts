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
