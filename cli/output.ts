// Terminal output: colour only on a TTY without NO_COLOR; progress as a bar on a TTY, plain lines otherwise.
import type { Logger, ProgressReporter } from '../engine/contract.js';
import { formatBytes, formatDuration } from '../lib/format.js';

const useColor = (): boolean => process.env.NO_COLOR === undefined && process.env.FORCE_COLOR !== '0' && Boolean(process.stderr.isTTY);

const wrap = (open: number, close: number) => (s: string) => (useColor() ? `\x1b[${open}m${s}\x1b[${close}m` : s);

export const paint = {
  red: wrap(31, 39),
  green: wrap(32, 39),
  yellow: wrap(33, 39),
  dim: wrap(2, 22),
  bold: wrap(1, 22),
};

// Shared with the report (lib/), which shows the same durations and sizes.
export { formatBytes, formatDuration };

/**
 * The progress bar on screen while it is unfinished: a line without its newline, which the next
 * line printed would be glued to (`[train] epoch 3 [====>   ]ran      augment  11.5s`).
 */
let liveBar: { owner: object; stream: NodeJS.WritableStream; text: string } | undefined;

/**
 * Prints a line on `stream` (stdout or stderr: one terminal): an unfinished progress bar is
 * cleared first and drawn again below the line, so the line stands alone.
 */
export function printLine(stream: NodeJS.WritableStream, line: string): void {
  const bar = liveBar;
  if (bar) bar.stream.write('\r\x1b[2K');
  stream.write(line + '\n');
  if (bar) bar.stream.write(bar.text);
}

/** Logger that prefixes lines with the stage name; debug lines only with --verbose. */
export function stageLogger(stage: string, verbose: boolean, write: (line: string) => void = (l) => printLine(process.stderr, l)): Logger {
  const prefix = paint.dim(`[${stage}]`);
  return {
    info: (m) => write(`${prefix} ${m}`),
    warn: (m) => write(`${prefix} ${paint.yellow('warning:')} ${m}`),
    debug: (m) => {
      if (verbose) write(`${prefix} ${paint.dim(m)}`);
    },
  };
}

function amount(value: number, unit: string): string {
  return unit === 'B' ? formatBytes(value) : `${Math.round(value)}${unit ? ' ' + unit : ''}`;
}

/**
 * Progress for one stage. On a TTY: a single redrawn bar line (throttled). Otherwise: a plain line
 * at most every 10 % (and at the end), so CI logs stay short.
 */
export function stageProgress(stage: string, stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const tty = Boolean(stream.isTTY) && process.env.CI === undefined;
  let label = '';
  let total = 0;
  let unit = '';
  let value = 0;
  let started = 0;
  let lastDraw = 0;
  let lastDecile = -1;
  let status = '';

  const line = (final: boolean): string => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? value / elapsed : 0;
    const frac = total > 0 ? Math.min(1, value / total) : 0;
    const eta = rate > 0 && total > value ? (total - value) / rate : 0;
    const parts = [`[${stage}] ${label}`];
    if (tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      parts.push(`[${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}]`);
    }
    parts.push(`${amount(value, unit)}/${amount(total, unit)}`);
    if (rate > 0) parts.push(`${amount(rate, unit)}/s`);
    if (!final && eta > 0) parts.push(`ETA ${formatDuration(eta * 1000)}`);
    if (final) parts.push(formatDuration(elapsed * 1000));
    if (status) parts.push(status);
    return parts.join('  ');
  };

  const owner = {};
  const draw = (final = false) => {
    const now = Date.now();
    if (tty) {
      if (!final && now - lastDraw < 100) return;
      lastDraw = now;
      const text = line(final);
      if (final) {
        // The finished bar becomes a line like any other (another stage's bar may be the one on screen).
        if (liveBar?.owner === owner) {
          stream.write('\r\x1b[2K');
          liveBar = undefined;
        }
        printLine(stream, text);
      } else {
        stream.write(`\r\x1b[2K${text}`);
        liveBar = { owner, stream, text };
      }
    } else {
      const decile = total > 0 ? Math.floor((10 * value) / total) : 0;
      // The 100 % line comes from done(), with the elapsed time.
      if (!final && (decile === lastDecile || decile >= 10)) return;
      lastDecile = decile;
      stream.write(line(final) + '\n');
    }
  };

  return {
    start(l, t, u = '') {
      label = l;
      total = t;
      unit = u;
      value = 0;
      status = '';
      started = Date.now();
      lastDecile = 0;
      lastDraw = 0;
    },
    tick(n = 1, s) {
      value += n;
      if (s !== undefined) status = s;
      draw();
    },
    update(v, s) {
      value = v;
      if (s !== undefined) status = s;
      draw();
    },
    done(s) {
      if (s !== undefined) status = s;
      draw(true);
    },
  };
}
