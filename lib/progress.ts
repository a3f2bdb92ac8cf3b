// How long work reports itself: log lines and a progress bar. lib code takes these as parameters;
// the engine hands a stage implementations of both (engine/contract.ts), the CLI draws them.

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/** Progress of long work: a bar on a TTY, occasional plain lines otherwise. */
export interface ProgressReporter {
  /** Starts (or restarts) a phase of `total` units. `unit` is e.g. `img`, `B`, `batch`. */
  start(label: string, total: number, unit?: string): void;
  /** Advances by `n` units; `status` is free text shown beside the bar (e.g. `loss 1.23`). */
  tick(n?: number, status?: string): void;
  /** Sets the absolute position. */
  update(value: number, status?: string): void;
  done(status?: string): void;
}
