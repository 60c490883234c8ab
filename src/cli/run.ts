// `tlsboot run`: its flags (kubelet's names where kubelet has them), the single identity they
// describe, and the daemon that keeps its certificate valid.
import os from 'node:os';
import type { Argv, Options } from 'yargs';
import { ConfigError, ExitCode, reportError, type ExitCodeValue } from '../base/errors.js';
import { createLogger, type LogFormat } from '../base/log.js';
import { formatDuration, parseDuration } from '../base/time.js';
import type { DaemonConfig, IdentityConfig } from '../daemon/config.js';
import { KNOWN_USAGES } from '../kube/vocabulary.js';
import { buildIdentity, DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_KEEP, servingOverrides, type IdentityOverrides } from '../node/identity.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../pki/keys.js';
import type { Io } from './io.js';

export const EPILOGUE = 'Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 CSR denied or failed, 143 stopped (SIGTERM/SIGINT) under --once before a certificate was in place.\n' +
  'Every flag can also be set as TLSBOOT_<FLAG>, e.g. TLSBOOT_BOOTSTRAP_KUBECONFIG.';

export interface RunArgs {
  config?: string;
  kubeconfig?: string;
  'metrics-address'?: string;
  'api-concurrency'?: number;
  'api-qps'?: number;
  systemctl?: string;
  'bootstrap-kubeconfig'?: string;
  'cert-dir': string;
  'node-name'?: string;
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
  serving: boolean;
  'ca-cert-hash'?: string[];
  'ca-refresh-interval'?: string;
  'reissue-jitter'?: string;
  'remove-bootstrap-credential': boolean;
  'approval-timeout': string;
  'retry-timeout': string;
  keep: number;
  'allow-insecure-bootstrap': boolean;
  'log-format': string;
  v: number;
}

export const RUN_OPTIONS: Record<string, Options> = {
  config: { type: 'string', describe: 'YAML config with one or more identities (instead of the single-identity flags)' },
  kubeconfig: { type: 'string', describe: 'kubeconfig to write (and use once it holds a valid certificate); with --serving, the node\'s client kubeconfig to request with' },
  'bootstrap-kubeconfig': { type: 'string', describe: 'kubeconfig with the bootstrap token, used when there is no valid certificate' },
  'cert-dir': { type: 'string', default: '/var/lib/tlsboot/pki', describe: 'folder for <prefix>-<timestamp>.pem and <prefix>-current.pem' },
  // No default here: the host name is read when the command runs, not when the module loads (the
  // executable's start-up snapshot is made on the build machine).
  'node-name': { type: 'string', describe: 'node name: identity system:node:<name> (default: the host name, lower-cased)' },
  'signer-name': { type: 'string', describe: 'CSR signerName (default kubernetes.io/kube-apiserver-client-kubelet)' },
  'common-name': { type: 'string', describe: 'subject CN (default system:node:<node-name>)' },
  organization: { type: 'string', array: true, describe: 'subject O, repeatable (default system:nodes)' },
  'dns-name': { type: 'string', array: true, describe: 'DNS SAN, repeatable (serving certificates)' },
  'ip-address': { type: 'string', array: true, describe: 'IP SAN, repeatable (serving certificates)' },
  usage: { type: 'string', array: true, describe: `key usage, repeatable (default kubelet's); one of: ${KNOWN_USAGES.join(', ')}` },
  'key-algorithm': { type: 'string', choices: [...KEY_ALGORITHMS], default: 'ecdsa-p256', describe: 'private key type' },
  'expiration-seconds': { type: 'number', describe: 'requested lifetime (>= 600); omitted by default, like kubelet' },
  'file-prefix': { type: 'string', describe: 'file name prefix (default kubelet-client; kubelet-server with --serving)' },
  serving: {
    type: 'boolean', default: false,
    describe: 'kubelet\'s serving certificate (signer kubelet-serving, CN system:node:<node-name>, server auth), requested with --kubeconfig, ' +
      'the node\'s client kubeconfig; SANs from --dns-name/--ip-address, or the host name and addresses',
  },
  once: { type: 'boolean', default: false, describe: 'make sure a valid certificate is on disk (bootstrap or rotate if due), then exit' },
  'ca-cert-hash': {
    type: 'string', array: true,
    describe: 'sha256:<hex> pin of the cluster CA\'s public key, repeatable (kubeadm\'s format): for a bootstrap kubeconfig with no CA, which is then discovered from cluster-info',
  },
  'ca-refresh-interval': { type: 'string', describe: 'how often the cluster\'s CAs are read from cluster-info (default 1h, jittered; 0: never)' },
  'reissue-jitter': { type: 'string', describe: 'after the cluster stops listing the certificate\'s CA, re-issue within this long (default 10m)' },
  'remove-bootstrap-credential': { type: 'boolean', default: false, describe: 'remove the bootstrap token once the first certificate works' },
  'approval-timeout': { type: 'string', default: formatDuration(DEFAULT_APPROVAL_TIMEOUT_MS), describe: 'how long one CSR may wait for approval and issuance' },
  'retry-timeout': { type: 'string', default: '5m', describe: 'with --once: how long to retry failures (server unreachable, 5xx) before exiting 1 with the last error' },
  keep: { type: 'number', default: DEFAULT_KEEP, describe: 'timestamped certificate files to keep' },
  'allow-insecure-bootstrap': { type: 'boolean', default: false, describe: 'accept insecure-skip-tls-verify in the bootstrap kubeconfig' },
  'log-format': { type: 'string', choices: ['text', 'json'], default: 'text' },
  v: { type: 'number', default: 0, describe: 'log verbosity (0-5)' },
  'api-concurrency': { type: 'number', describe: 'requests in flight per API server, all identities together (default 8; watches not counted)' },
  'api-qps': { type: 'number', describe: 'requests started per second per API server, all identities together (default 20)' },
  'metrics-address': { type: 'string', describe: 'serve /metrics, /healthz, /readyz on host:port (e.g. 127.0.0.1:9717)' },
  systemctl: { type: 'string', describe: 'the systemctl that reloadUnit hooks run (default: systemctl from PATH)' },
};

export function runOptions(y: Argv): Argv {
  return y.options(RUN_OPTIONS).epilogue(EPILOGUE);
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

export async function runCommand(a: RunArgs, io: Io): Promise<ExitCodeValue> {
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
export async function configFrom(a: RunArgs): Promise<DaemonConfig> {
  if (a.config) {
    if (a.kubeconfig) throw new ConfigError('give either --config or --kubeconfig (with the other single-identity flags), not both');
    const { loadConfig } = await import('../daemon/config.js');
    return withProcessFlags(await loadConfig(a.config), a);
  }
  if (!a.kubeconfig) throw new ConfigError('--kubeconfig is required (or --config FILE for several identities)');
  if (!Number.isInteger(a.keep) || a.keep < 1) throw new ConfigError('--keep must be a whole number of at least 1');
  const nodeName = a['node-name'] ?? os.hostname().toLowerCase();
  if (a.serving && a['bootstrap-kubeconfig']) {
    throw new ConfigError('--bootstrap-kubeconfig is not used with --serving: the serving certificate is requested with --kubeconfig, the node\'s client kubeconfig');
  }
  const identity = buildIdentity(nodeName, a.serving ? servingOverrides(nodeName, overridesFrom(a)) : overridesFrom(a));
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
  if (a.serving) one.serving = true;
  const { trustSettings } = await import('../daemon/config.js');
  Object.assign(one, trustSettings(
    { pins: a['ca-cert-hash']?.map(String), refresh: a['ca-refresh-interval'], jitter: a['reissue-jitter'], remove: a['remove-bootstrap-credential'] },
    { pins: '--ca-cert-hash', refresh: '--ca-refresh-interval', jitter: '--reissue-jitter', remove: '--remove-bootstrap-credential' },
  ));
  return withProcessFlags({ identities: [one] }, a);
}

/** The flags that apply to the whole process, over what a config file says. */
async function withProcessFlags(cfg: DaemonConfig, a: RunArgs): Promise<DaemonConfig> {
  if (a['metrics-address']) cfg.metrics = { address: a['metrics-address'] };
  if (a['api-concurrency'] !== undefined || a['api-qps'] !== undefined) {
    const { apiLimit } = await import('../daemon/config.js');
    if (a['api-concurrency'] !== undefined) cfg.apiConcurrency = apiLimit(a['api-concurrency'], '--api-concurrency', 'requests in flight per API server; default 8');
    if (a['api-qps'] !== undefined) cfg.apiQps = apiLimit(a['api-qps'], '--api-qps', 'requests started per second per API server; default 20');
  }
  return cfg;
}
