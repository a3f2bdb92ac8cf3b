// `pipeline runs | head -1`: the reader leaves, and the next write fails with EPIPE. Node reports
// that as an unhandled 'error' event (a stack trace, exit 1); a command line tool ends quietly.
// A command that is doing work (it handles SIGINT: run, schedule, worker) is not cut short by it:
// it finishes or stops as it otherwise would, its output discarded, so the store is left as a
// normal end leaves it.

export function endQuietlyOnBrokenPipe(streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  let gone = false;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' && !gone) {
      gone = true;
      if (process.listenerCount('SIGINT') === 0) process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      return;
    }
    // Writes after the pipe broke fail too (the stream is destroyed): nothing to report them to.
    if (gone) return;
    throw err;
  };
  for (const stream of streams) stream.on('error', onError);
}
