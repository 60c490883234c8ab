// `tlsboot approve`: runs the policy approver. Checks the policy and the kubeconfig's
// permissions before it starts, so a mistake ends it at once with exit 2 instead of a
// controller that silently approves nothing.
import type { Argv } from 'yargs';
import { ConfigError, ExitCode, errorMessage, reportError, type ExitCodeValue } from '../base/errors.js';
import { createLogger, type LogFormat, type Logger } from '../base/log.js';
import type { Policy } from '../approver/policy.js';
import { parseDuration } from '../base/time.js';
import type { Io } from './io.js';

export interface ApproveArgs {
  kubeconfig: string;
  policy: string;
  'metrics-address'?: string;
  'dry-run': boolean;
  once: boolean;
  'watch-timeout': string;
  'log-format': string;
  v: number;
}

/** Flags of `approve`; also read as TLSBOOT_<FLAG>. */
export const APPROVE_KEYS = ['kubeconfig', 'policy', 'metrics-address', 'dry-run', 'once', 'watch-timeout', 'log-format', 'v'];

export function approveOptions(y: Argv): Argv {
  return y.options({
    kubeconfig: { type: 'string', demandOption: true, describe: 'kubeconfig of the approver\'s identity (see tlsboot cluster approver)' },
    policy: { type: 'string', demandOption: true, describe: 'the approval policy (YAML; see examples/approver/policy.yaml)' },
    'metrics-address': { type: 'string', describe: 'serve /metrics, /healthz, /readyz on host:port (e.g. 127.0.0.1:9718)' },
    'dry-run': { type: 'boolean', default: false, describe: 'decide and log, but approve and deny nothing' },
    once: { type: 'boolean', default: false, describe: 'handle the CSRs pending now, then exit' },
    'watch-timeout': { type: 'string', default: '5m', describe: 'how long one watch request lasts before it is opened again' },
    'log-format': { type: 'string', choices: ['text', 'json'], default: 'text' },
    v: { type: 'number', default: 0, describe: 'log verbosity (0-5)' },
  }).epilogue('Exit codes: 0 stopped (or --once without errors), 1 runtime failure, 2 bad policy, kubeconfig or permissions.\n' +
    'SIGHUP reads the policy again; an invalid policy keeps the old one.');
}

export async function approveCommand(a: ApproveArgs, io: Io): Promise<ExitCodeValue> {
  const log = createLogger({ format: a['log-format'] as LogFormat, verbosity: a.v, write: (l) => io.stderr(l + '\n') });
  const controller = new AbortController();
  try {
    return await approve(a, io, log, controller);
  } catch (err) {
    return controller.signal.aborted ? ExitCode.ok : reportError(err, log);
  }
}

async function approve(a: ApproveArgs, io: Io, log: Logger, controller: AbortController): Promise<ExitCodeValue> {
  const [{ loadPolicy }, { Approver, missingPermissions }, { adminClient }, { ApproverMetrics }, { Notifier }] = await Promise.all([
    import('../approver/policy.js'), import('../approver/approver.js'), import('../cluster/cluster.js'), import('../approver/metrics.js'), import('../base/notify.js'),
  ]);
  const watchTimeoutSeconds = Math.max(1, Math.round(parseDuration(a['watch-timeout'], '--watch-timeout') / 1000));
  const policy = await loadPolicy(a.policy);
  const { api } = await adminClient(a.kubeconfig);
  const metrics = new ApproverMetrics();
  const notifier = new Notifier(log);
  // Without these the approver would run and silently approve nothing.
  const checkPermissions = async (p: Policy): Promise<void> => {
    const missing = a['dry-run'] ? [] : await missingPermissions(api, p);
    if (missing.length > 0) {
      throw new ConfigError(`${a.kubeconfig}: its identity may not ${missing.join(', ')}; ` +
        `grant them with: tlsboot cluster approver --kubeconfig ADMIN.kubeconfig --policy ${a.policy}`);
    }
  };
  try {
    await checkPermissions(policy);
    const approver = new Approver(api, policy, {
      log, metrics, dryRun: a['dry-run'], watchTimeoutSeconds,
      onSynced: () => void notifier.ready(`watching CSRs with ${policy.rules.length} rule(s) from ${a.policy}`),
    });
    const reload = async (): Promise<void> => {
      const next = await loadPolicy(a.policy);
      await checkPermissions(next);
      approver.setPolicy(next);
      log.info('policy reloaded', { policy: a.policy, rules: next.rules.length });
    };
    if (a.once) {
      const t = await approver.once(controller.signal);
      io.stdout(`approved ${t.approved}, denied ${t.denied}, left alone ${t.ignored}, errors ${t.errors}\n`);
      return t.errors > 0 ? ExitCode.runtime : ExitCode.ok;
    }
    io.onSignal?.('SIGTERM', () => controller.abort());
    io.onSignal?.('SIGINT', () => controller.abort());
    io.onSignal?.('SIGHUP', () => {
      void reload().catch((err: unknown) => log.error(`policy not reloaded, keeping the old one: ${errorMessage(err)}`));
    });
    if (a['metrics-address']) await metrics.listen(a['metrics-address'], () => approver.ready);
    notifier.startWatchdog();
    await approver.run(controller.signal);
    await notifier.stopping();
    log.info('stopped');
    return ExitCode.ok;
  } finally {
    await metrics.close();
    await api.close();
  }
}
