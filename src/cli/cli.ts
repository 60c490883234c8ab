// The command line: one parser for every command (each in its own module), TLSBOOT_*
// environment variables, the arguments checked before any command runs, exit codes.
import yargs from 'yargs';
import { ConfigError, ExitCode, errorMessage, type ExitCodeValue } from '../base/errors.js';
import { redact } from '../base/log.js';
import { VERSION } from '../base/version.js';
import { APPROVE_KEYS, approveCommand, approveOptions } from './approve.js';
import { CREDENTIAL_OPTIONS, credentialCommand } from './credential.js';
import { processIo, type Io } from './io.js';
import { EPILOGUE, RUN_OPTIONS, runCommand, runOptions } from './run.js';
import { DOCTOR_KEYS, STATUS_KEYS, doctorCommand, doctorOptions, statusCommand, statusOptions } from './status.js';

/**
 * TLSBOOT_<FLAG> variables for the flags of `run`, as arguments placed before the user's so
 * that a flag on the command line wins. Only known flags are read: an unrelated TLSBOOT_*
 * variable in the environment must not stop the daemon (yargs' .env() with .strict() would).
 */
export function envArguments(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const keys: Record<string, string[]> = { run: Object.keys(RUN_OPTIONS), status: STATUS_KEYS, doctor: DOCTOR_KEYS, approve: APPROVE_KEYS };
  const command = argv[0] ?? '';
  const flags = Object.hasOwn(keys, command) ? keys[command]! : [];
  const out: string[] = [];
  for (const flag of flags) {
    const value = env[`TLSBOOT_${flag.toUpperCase().replace(/-/g, '_')}`];
    const given = argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`) || (flag === 'v' && /^-v/.test(a)));
    if (value !== undefined && value !== '' && !given) out.push(`--${flag}=${value}`);
  }
  return out;
}

/** Flags that may be given more than once; any other flag given twice is refused. */
const REPEATABLE = new Set([...Object.entries(RUN_OPTIONS).filter(([, o]) => o.array).map(([k]) => k), 'groups']);

/**
 * Normalise the arguments before yargs sees them. `--approval-timeout -5m` would be read as the
 * short flags -5 and -m: a value that starts with "-" and a digit is joined to its flag, so that
 * the flag's own check names it. Refuses a single-value flag given twice, which yargs would turn
 * into a list that no handler expects.
 */
export function normaliseArguments(argv: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const flag = /^--([a-z][a-z0-9-]*)(=|$)/.exec(a)?.[1];
    if (flag && !flag.startsWith('no-') && !REPEATABLE.has(flag)) {
      if (seen.has(flag)) throw new ConfigError(`--${flag} is given more than once; give it once`);
      seen.add(flag);
    }
    const next = argv[i + 1];
    if (flag && !a.includes('=') && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Number flags that yargs let through as NaN, and a verbosity out of range. */
function numberProblem(argv: Record<string, unknown>): string | undefined {
  for (const [k, v] of Object.entries(argv)) {
    if (typeof v === 'number' && Number.isNaN(v) && !/[A-Z]/.test(k)) return `${k.length === 1 ? '-' : '--'}${k} must be a number`;
  }
  const v = argv['v'];
  if (typeof v === 'number' && !(Number.isInteger(v) && v >= 0 && v <= 10)) return '-v must be a whole number from 0 to 10';
  return undefined;
}

/** Run the CLI with these arguments; resolves to the process exit code. */
export async function main(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let code: number = ExitCode.ok;
  let failed: string | undefined;
  try {
    argv = normaliseArguments([...argv.slice(0, 1), ...envArguments(argv, env), ...argv.slice(1)]);
  } catch (err) {
    io.stderr(`tlsboot: ${errorMessage(err)} (see tlsboot --help)\n`);
    return ExitCode.usage;
  }
  const { clusterCommands } = await import('./cluster.js');
  // yargs calls a handler even after .fail() has recorded a usage error: run nothing then.
  const act = <A>(command: (a: A, io: Io) => Promise<ExitCodeValue>) => async (a: unknown): Promise<void> => {
    if (!failed) code = await command(a as A, io);
  };
  const parser = yargs(argv)
    .scriptName('tlsboot')
    .usage('$0 <command> [options]\n\nKubelet-style TLS bootstrap and client certificate rotation for any workload.')
    .command('run', 'bootstrap and keep a client certificate valid', runOptions, act(runCommand))
    .command('status', 'show the certificates on disk, their expiry and next rotation', statusOptions, act(statusCommand))
    .command('doctor', 'find out why bootstrap or rotation does not work, with the fix', doctorOptions, act(doctorCommand))
    .command('approve', 'approve and deny CSRs by a policy file (for signers the controller-manager does not approve)', approveOptions, act(approveCommand))
    .command('credential', 'print the current certificate as a client-go ExecCredential (an exec plugin for kubectl)', CREDENTIAL_OPTIONS, act(credentialCommand))
    .command('version', 'print the version', {}, () => {
      io.stdout(`tlsboot v${VERSION} (node ${process.version}, ${process.platform}/${process.arch})\n`);
    });
  clusterCommands(parser, io, async (h) => {
    if (!failed) code = await h();
  });
  parser
    .demandCommand(1, 'name a command: run, status, doctor, approve, credential, token, cluster, kubeconfig, bundle or version')
    .check((a) => {
      const problem = numberProblem(a);
      if (problem) throw new Error(problem);
      return true;
    }, true)
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue(EPILOGUE)
    .exitProcess(false)
    .fail((msg, err) => {
      failed = msg || (err ? errorMessage(err) : 'invalid arguments');
    });
  try {
    await parser.parseAsync(argv, {}, (_err, _argv, output) => {
      if (output && !failed) io.stdout(output + '\n');
    });
  } catch (err) {
    failed ??= errorMessage(err);
  }
  if (failed) {
    const oneLine = failed.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
    io.stderr(`tlsboot: ${redact(oneLine)} (see tlsboot --help)\n`);
    return ExitCode.usage;
  }
  return code;
}
