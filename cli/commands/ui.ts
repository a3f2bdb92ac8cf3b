// `pipeline ui [--port N] [--host ADDR]`: serves the web app over the store (ui/server.ts) until
// stopped. Loopback by default; any other address needs PIPELINE_UI_TOKEN, which every request
// must then carry.
import type { Command } from 'commander';
import { UsageError } from '../../engine/errors.js';
import { isLoopback } from '../../ui/security.js';
import { startUiServer } from '../../ui/server.js';
import type { GlobalOptions } from '../global-options.js';
import { openSession } from '../session.js';
import { portNumber } from '../stage-lines.js';

interface UiOptions {
  port: number;
  host: string;
}

export function register(program: Command): void {
  program
    .command('ui')
    .description('serve a local web app over the store: runs (live), the DAG, logs, experiments, reports, models, schedule')
    .option('--port <n>', 'port to listen on (0: any free port)', portNumber, 8375)
    .option('--host <address>', 'address to bind (other than loopback: PIPELINE_UI_TOKEN must be set)', '127.0.0.1')
    .action(async (options: UiOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const token = process.env.PIPELINE_UI_TOKEN || undefined;
      if (!isLoopback(options.host) && !token)
        throw new UsageError(`--host ${options.host} is not loopback: set PIPELINE_UI_TOKEN (every request must then carry it)`);
      const session = await openSession(globals.config);
      const ui = await startUiServer({ session, host: options.host, port: options.port, token });
      process.stdout.write(`pipeline ui: serving ${session.pipeline.root} at ${ui.url}${token ? ' (token required)' : ''}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await ui.close();
    });
}
