// The command line: flags (kubelet's names where kubelet has them), TLSBOOT_* environment
// variables, exit codes. Parses, builds an Agent, runs it, maps errors to exit codes.
import os from 'node:os';
import yargs, { type Argv, type Options } from 'yargs';
import { APPROVE_KEYS, approveCommand, approveOptions } from './approve.js';
import { ConfigError, ExitCode, errorMessage, reportError, type ExitCodeValue } from '../base/errors.js';
import type { DaemonConfig, IdentityConfig } from '../daemon/config.js';
import { buildIdentity, DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_KEEP, type IdentityOverrides } from '../node/identity.js';
import { KNOWN_USAGES } from '../kube/vocabulary.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../pki/keys.js';
import { createLogger, redact, type LogFormat } from '../base/log.js';
import { formatDuration, parseDuration } from '../base/time.js';
import { VERSION } from '../base/version.js';
import { processIo, type Io } from './io.js';

const EPILOGUE = 'Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 CSR denied or failed, 143 stopped (SIGTERM/SIGINT) under --once before a certificate was in place.\n' +
  'Every flag can also be set as TLSBOOT_<FLAG>, e.g. TLSBOOT_BOOTSTRAP_KUBECONFIG.';

interface RunArgs {
  config?: string;
  kubeconfig?: string;
  'metrics-address'?: string;
  systemctl?: string;
  'bootstrap-kubeconfig'?: string;
  'cert-dir': string;
  'node-name': string;
  'signer-name'?: string;
  'common-name'?: string;
  organization?: string[];
  'dns-name'?: string[];
  'ip-address'?: string[];
  usage?: string[];
  'key-algorithm': string;
  'expiration-seconds'?: number;
  'file-prefix'?: string;
  once: boolean;
  'approval-timeout': string;
  'retry-timeout': string;
  keep: number;
  'allow-insecure-bootstrap': boolean;
  'log-format': string;
  v: number;
}

const RUN_OPTIONS: Record<string, Options> = {
  config: { type: 'string', describe: 'YAML config with one or more identities (instead of the single-identity flags)' },
  kubeconfig: { type: 'string', describe: 'kubeconfig to write (and use once it holds a valid certificate)' },
  'bootstrap-kubeconfig': { type: 'string', describe: 'kubeconfig with the bootstrap token, used when there is no valid certificate' },
  'cert-dir': { type: 'string', default: '/var/lib/tlsboot/pki', describe: 'folder for <prefix>-<timestamp>.pem and <prefix>-current.pem' },
  'node-name': { type: 'string', default: os.hostname().toLowerCase(), defaultDescription: 'host name, lower-cased', describe: 'node name: identity system:node:<name>' },
  'signer-name': { type: 'string', describe: 'CSR signerName (default kubernetes.io/kube-apiserver-client-kubelet)' },
  'common-name': { type: 'string', describe: 'subject CN (default system:node:<node-name>)' },
  organization: { type: 'string', array: true, describe: 'subject O, repeatable (default system:nodes)' },
  'dns-name': { type: 'string', array: true, describe: 'DNS SAN, repeatable (serving certificates)' },
  'ip-address': { type: 'string', array: true, describe: 'IP SAN, repeatable (serving certificates)' },
  usage: { type: 'string', array: true, describe: `key usage, repeatable (default kubelet's); one of: ${KNOWN_USAGES.join(', ')}` },
  'key-algorithm': { type: 'string', choices: [...KEY_ALGORITHMS], default: 'ecdsa-p256', describe: 'private key type' },
  'expiration-seconds': { type: 'number', describe: 'requested lifetime (>= 600); omitted by default, like kubelet' },
  'file-prefix': { type: 'string', describe: 'file name prefix (default kubelet-client)' },
  once: { type: 'boolean', default: false, describe: 'make sure a valid certificate is on disk (bootstrap or rotate if due), then exit' },
  'approval-timeout': { type: 'string', default: formatDuration(DEFAULT_APPROVAL_TIMEOUT_MS), describe: 'how long one CSR may wait for approval and issuance' },
  'retry-timeout': { type: 'string', default: '5m', describe: 'with --once: how long to retry failures (server unreachable, 5xx) before exiting 1 with the last error' },
  keep: { type: 'number', default: DEFAULT_KEEP, describe: 'timestamped certificate files to keep' },
  'allow-insecure-bootstrap': { type: 'boolean', default: false, describe: 'accept insecure-skip-tls-verify in the bootstrap kubeconfig' },
  'log-format': { type: 'string', choices: ['text', 'json'], default: 'text' },
  v: { type: 'number', default: 0, describe: 'log verbosity (0-5)' },
  'metrics-address': { type: 'string', describe: 'serve /metrics, /healthz, /readyz on host:port (e.g. 127.0.0.1:9717)' },
  systemctl: { type: 'string', describe: 'the systemctl that reloadUnit hooks run (default: systemctl from PATH)' },
};

const STATUS_KEYS = ['config', 'kubeconfig', 'cert-dir', 'node-name', 'signer-name', 'common-name', 'organization', 'file-prefix', 'key-algorithm', 'keep', 'approval-timeout', 'allow-insecure-bootstrap'];

const DOCTOR_KEYS = [...STATUS_KEYS, 'bootstrap-kubeconfig', 'usage', 'dns-name', 'ip-address', 'expiration-seconds'];

function doctorOptions(y: Argv): Argv {
  const opts = Object.fromEntries(DOCTOR_KEYS.map((k) => [k, RUN_OPTIONS[k]!]));
  return y.options({ ...opts, json: { type: 'boolean', default: false, describe: 'print JSON' } })
    .epilogue('Checks in order and stops at the first failure. Exit codes: 0 no failure (warnings allowed), 1 a check failed, 2 usage error.');
}

function statusOptions(y: Argv): Argv {
  const opts = Object.fromEntries(STATUS_KEYS.map((k) => [k, RUN_OPTIONS[k]!]));
  return y.options({ ...opts, json: { type: 'boolean', default: false, describe: 'print JSON' } })
    .epilogue('Exit codes: 0 all fine, 1 a certificate in its last 10 % of life or a hook failing, 2 a certificate missing or expired.');
}

type StatusArgs = RunArgs & { json: boolean };

function runOptions(y: Argv): Argv {
  return y.options(RUN_OPTIONS).epilogue(EPILOGUE);
}

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

function overridesFrom(a: RunArgs): IdentityOverrides {
  const o: IdentityOverrides = { keyAlgorithm: a['key-algorithm'] as KeyAlgorithm };
  if (a['signer-name']) o.signerName = a['signer-name'];
  if (a['common-name']) o.commonName = a['common-name'];
  if (a.organization?.length) o.organizations = a.organization.map(String);
  if (a['dns-name']?.length) o.dnsNames = a['dns-name'].map(String);
  if (a['ip-address']?.length) o.ipAddresses = a['ip-address'].map(String);
  if (a.usage?.length) o.usages = a.usage.map(String);
  if (a['expiration-seconds'] !== undefined) o.expirationSeconds = a['expiration-seconds'];
  if (a['file-prefix']) o.filePrefix = a['file-prefix'];
  return o;
}

async function runCommand(a: RunArgs, io: Io): Promise<ExitCodeValue> {
  const log = createLogger({ format: a['log-format'] as LogFormat, verbosity: a.v, write: (l) => io.stderr(l + '\n') });
  const controller = new AbortController();
  try {
    const config = await configFrom(a);
    // Loaded here, not at the top: `version` and `--help` need none of the heavy modules.
    const [{ Daemon }, { Notifier }] = await Promise.all([import('../daemon/daemon.js'), import('../base/notify.js')]);
    const retryTimeoutMs = parseDuration(a['retry-timeout'], '--retry-timeout');
    const daemon = new Daemon(config, { log, notifier: new Notifier(log), once: a.once, retryTimeoutMs, ...(a.systemctl ? { systemctl: a.systemctl } : {}) });
    io.onSignal?.('SIGTERM', () => controller.abort(new Error('SIGTERM')));
    io.onSignal?.('SIGINT', () => controller.abort(new Error('SIGINT')));
    io.onSignal?.('SIGUSR1', () => daemon.rotateNow());
    io.onSignal?.('SIGHUP', () => {
      if (config.file) void daemon.reload();
      else log.info('SIGHUP: nothing to reload without --config');
    });
    if (a.once) return await daemon.runOnce(controller.signal);
    const code = await daemon.run(controller.signal);
    log.info('stopped');
    return code;
  } catch (err) {
    if (controller.signal.aborted) {
      log.info('stopped');
      return ExitCode.ok;
    }
    return reportError(err, log);
  }
}

/** --config FILE, or one identity from the flags. */
async function configFrom(a: RunArgs | StatusArgs): Promise<DaemonConfig> {
  if (a.config) {
    if (a.kubeconfig) throw new ConfigError('give either --config or --kubeconfig (with the other single-identity flags), not both');
    const { loadConfig } = await import('../daemon/config.js');
    const cfg = await loadConfig(a.config);
    if (a['metrics-address']) cfg.metrics = { address: a['metrics-address'] };
    return cfg;
  }
  if (!a.kubeconfig) throw new ConfigError('--kubeconfig is required (or --config FILE for several identities)');
  if (!Number.isInteger(a.keep) || a.keep < 1) throw new ConfigError('--keep must be a whole number of at least 1');
  const identity = buildIdentity(a['node-name'], overridesFrom(a));
  const one: IdentityConfig = {
    name: identity.filePrefix,
    kubeconfig: a.kubeconfig,
    certDir: a['cert-dir'],
    identity,
    approvalTimeoutMs: parseDuration(a['approval-timeout'], '--approval-timeout'),
    keep: a.keep,
    allowInsecureBootstrap: a['allow-insecure-bootstrap'],
    outputs: [],
    hooks: [],
  };
  if (a['bootstrap-kubeconfig']) one.bootstrapKubeconfig = a['bootstrap-kubeconfig'];
  const cfg: DaemonConfig = { identities: [one] };
  if (a['metrics-address']) cfg.metrics = { address: a['metrics-address'] };
  return cfg;
}

async function statusCommand(a: StatusArgs, io: Io): Promise<ExitCodeValue> {
  try {
    const { readStatus, formatStatus } = await import('../daemon/status.js');
    const { code, identities } = await readStatus(await configFrom(a));
    io.stdout(a.json ? JSON.stringify({ identities }, null, 2) + '\n' : formatStatus(identities));
    return code;
  } catch (err) {
    return reportError(err, createLogger({ write: (l) => io.stderr(l + '\n') }));
  }
}

async function doctorCommand(a: StatusArgs, io: Io): Promise<ExitCodeValue> {
  try {
    const { runDoctor, formatChecks } = await import('../daemon/doctor.js');
    const config = await configFrom(a);
    const results: Array<{ identity: string; checks: Awaited<ReturnType<typeof runDoctor>> }> = [];
    for (const id of config.identities) results.push({ identity: id.name, checks: await runDoctor(id) });
    if (a.json) io.stdout(JSON.stringify({ identities: results }, null, 2) + '\n');
    else io.stdout(results.map((r) => (results.length > 1 ? `${r.identity}:\n` : '') + formatChecks(r.checks)).join('\n'));
    return results.some((r) => r.checks.some((c) => c.verdict === 'fail')) ? ExitCode.runtime : ExitCode.ok;
  } catch (err) {
    return reportError(err, createLogger({ write: (l) => io.stderr(l + '\n') }));
  }
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
    .command('version', 'print the version', {}, () => {
      io.stdout(`tlsboot v${VERSION}\n`);
    });
  clusterCommands(parser, io, async (h) => {
    if (!failed) code = await h();
  });
  parser
    .demandCommand(1, 'name a command: run, status, doctor, approve, token, cluster, kubeconfig, bundle or version')
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
