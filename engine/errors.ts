// Every error class of the engine. PipelineError and its subclasses carry an exit code; the CLI has
// one top-level catch that formats them (cli/format-error.ts). lib/ has its own (lib/errors.ts),
// which stage kinds translate into these (stages/lib-errors.ts).

export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

/** Base of every error the CLI reports as one line (no stack unless --verbose). */
export class PipelineError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad command-line usage. Exit 2. */
export class UsageError extends PipelineError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** A request `pipeline ui` refuses (ui/server.ts): answered with `status`, never a command's exit. */
export class UiRequestError extends PipelineError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message, 1);
  }
}

/** Invalid pipeline.yaml (syntax, schema, graph). Exit 2; nothing is run or written. */
export class ConfigError extends PipelineError {
  readonly location?: SourceLocation;
  constructor(message: string, location?: SourceLocation) {
    super(location ? `${formatLocation(location)}: ${message}` : message, 2);
    this.location = location;
  }
}

/** Several config errors reported together (each on its own line). */
export class ConfigErrors extends PipelineError {
  readonly errors: ConfigError[];
  constructor(errors: ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'), 2);
    this.errors = errors;
  }
}

/** A stage failed (threw, bad input data, checksum mismatch...). Exit 1. */
export class StageError extends PipelineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 1, options);
  }
}

/** A stage's attempt ran past its `timeout:` and was stopped (its process group killed, its signal aborted). Exit 1. */
export class StageTimeoutError extends StageError {}

/** The store lock could not be taken in time. Exit 1. */
export class LockError extends PipelineError {
  constructor(message: string) {
    super(message, 1);
  }
}

/**
 * Why a remote operation failed. `unreachable`, `timeout` and `denied` mean the remote is unusable
 * for this run; `server` may be transient; `corrupt` is about one object.
 */
export type RemoteFailure = 'unreachable' | 'timeout' | 'denied' | 'server' | 'corrupt' | 'protocol';

/** A remote operation failed. Exit 1 when it reaches the top (push / pull); `run` degrades to local computation. */
export class RemoteError extends PipelineError {
  constructor(
    readonly failure: RemoteFailure,
    message: string,
    options?: { cause?: unknown; digest?: string },
  ) {
    super(message, 1, options);
    this.digest = options?.digest;
  }
  /** The object concerned, when one object is corrupt or missing. */
  readonly digest?: string;
}

/**
 * The run computed what it had to, but `--push` uploaded fewer results than it computed (the remote
 * is down, refuses or fails). Exit 3: the results are in the local store; `pipeline push` sends them later.
 */
export class PushIncompleteError extends PipelineError {
  constructor(message: string) {
    super(message, 3);
  }
}

/**
 * A write failed because the disk (or quota) is full. Exit 1. `what` says what was being written and
 * where (the message adds what to do); `code` stays the system's (ENOSPC / EDQUOT), so code testing
 * for it still sees it.
 */
export class DiskFullError extends PipelineError {
  readonly code: string;
  constructor(
    readonly what: string,
    options: { cause?: unknown; code?: string } = {},
  ) {
    super(`${what}; make room and run again`, 1, { cause: options.cause });
    this.code = options.code ?? 'ENOSPC';
  }
}

/** The run was interrupted (Ctrl-C / SIGTERM). Exit 130. */
export class AbortedError extends PipelineError {
  constructor(message = 'interrupted') {
    super(message, 130);
  }
}

/** The run was cancelled (`pipeline cancel`): its stages were stopped, nothing partial committed. Exit 130. */
export class CancelledError extends AbortedError {
  constructor(message = 'cancelled (pipeline cancel): running stages were stopped; nothing partial was committed') {
    super(message);
  }
}

/** A queue job a worker will not run (engine/queue/admit.ts): the message says why; logged, never retried. */
export class JobRefusedError extends Error {}

/**
 * An object whose content no longer hashes to its name (a flipped bit, a stray write). Caught where
 * a stored result is reused: the stage runs again instead.
 */
export class CorruptObjectError extends Error {
  constructor(
    readonly digest: string,
    readonly actual: string,
  ) {
    super(`stored object ${digest.slice(0, 16)}… is corrupt (its content hashes to ${actual.slice(0, 16)}…)`);
  }
}

/** An output entry that cannot be stored (symlinks, sockets...): the stage fails naming it. */
export class UnsupportedEntryError extends Error {}

/**
 * `predict` classified what it could, but some images (or archives) could not be read: they were
 * skipped, reported on stderr and given an error row in the output. Exit 4.
 */
export class ImagesSkippedError extends PipelineError {
  constructor(message: string) {
    super(message, 4);
  }
}

/** A webhook's HTTP answer that another attempt would not change (e.g. 404, 401): not retried. */
export class FinalAnswer extends Error {}

/** The CLI's first parse reached a command it had not loaded: cli/main.ts parses again with every command. */
export class MisreadArguments extends Error {}
