// The process around the CLI: its title, where Node's own warnings go, and the exit code. Shared
// by the npm entry (main.ts) and the single executable's entry (sea.ts).
import { createLogger, routeProcessWarnings } from '../base/log.js';
import { main } from './cli.js';

/** Run tlsboot with these arguments (argv without node and the script); resolves to the exit code. */
export async function start(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  process.title = 'tlsboot';
  // Before anything can warn. The format follows --log-format where it is given.
  const json = args.some((a, i) => a === '--log-format=json' || (a === '--log-format' && args[i + 1] === 'json')) || env['TLSBOOT_LOG_FORMAT'] === 'json';
  routeProcessWarnings(createLogger({ format: json ? 'json' : 'text' }));
  return main(args, undefined, env);
}
