// The config file: one or more identities in one process (tlsboot run --config FILE). Every
// error names the file, the identity and the field; unknown keys are rejected. The flags of
// `tlsboot run` build the same structure for a single identity.
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../base/errors.js';
import { isLabel } from '../base/text.js';
import { buildIdentity, DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_KEEP, servingOverrides, type Identity, type IdentityOverrides, type IdentitySettings } from '../node/identity.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../pki/keys.js';
import { MAX_TIMER_MS, parseDuration } from '../base/time.js';
import { dict, onlyKeys, readYamlFile, stringList } from '../base/yamlfields.js';
import { checkFolderPath } from '../base/fsutil.js';
import { parsePin } from '../pki/pin.js';

export const OUTPUT_TYPES = ['cert', 'key', 'ca', 'combined'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

export interface OutputSpec {
  type: OutputType;
  path: string;
  owner?: string;
  group?: string;
  mode: number;
}

export type HookSpec =
  | { kind: 'exec'; argv: string[]; timeoutMs: number }
  | { kind: 'reloadUnit'; unit: string }
  | { kind: 'signal'; pidFile: string; signal: NodeJS.Signals };

/** One identity of the config: what its agent reads, plus its name, outputs and hooks. */
export interface IdentityConfig extends IdentitySettings {
  name: string;
  approvalTimeoutMs: number;
  keep: number;
  allowInsecureBootstrap: boolean;
  outputs: OutputSpec[];
  hooks: HookSpec[];
}

export interface DaemonConfig {
  /** The config file, when there is one (reloaded on SIGHUP and on change). */
  file?: string;
  identities: IdentityConfig[];
  metrics?: { address: string };
  /** Requests in flight per API server, for all identities together (default 8). */
  apiConcurrency?: number;
  /** Requests started per second per API server, for all identities together (default 20). */
  apiQps?: number;
}

const IDENTITY_KEYS = new Set([
  'name', 'bootstrapKubeconfig', 'bootstrapTokenFile', 'kubeconfig', 'certDir', 'filePrefix', 'nodeName', 'subject',
  'signerName', 'usages', 'dnsNames', 'ipAddresses', 'keyAlgorithm', 'expirationSeconds', 'rotationFraction',
  'approvalTimeout', 'keep', 'allowInsecureBootstrap', 'outputs', 'hooks', 'serving',
  'caCertHashes', 'caRefreshInterval', 'reissueJitter', 'removeBootstrapCredential',
]);

/** The config file's key for each single-identity flag, for buildIdentity's messages. */
const CONFIG_KEY_OF_FLAG: Record<string, string> = {
  'node-name': 'nodeName', 'signer-name': 'signerName', 'common-name': 'subject.commonName', organization: 'subject.organizations',
  'dns-name': 'dnsNames', 'ip-address': 'ipAddresses', usage: 'usages', 'key-algorithm': 'keyAlgorithm',
  'expiration-seconds': 'expirationSeconds', 'file-prefix': 'filePrefix', serving: 'serving',
};

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<DaemonConfig> {
  return parseConfig(await readYamlFile(file, 'config file'), file, env);
}

export function parseConfig(doc: unknown, file: string, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const top = dict(doc, `${file}`, 'the config file must be a mapping with "identities"');
  onlyKeys(top, new Set(['identities', 'metrics', 'apiConcurrency', 'apiQps']), file);
  const list = top['identities'];
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${file}: identities must be a non-empty list`);
  const dir = path.dirname(path.resolve(file));
  const identities = list.map((entry, i) => parseIdentity(entry, i, file, dir, env));
  const names = new Set<string>();
  const dirs = new Map<string, string>();
  for (const id of identities) {
    if (names.has(id.name)) throw new ConfigError(`${file}: identities: the name ${JSON.stringify(id.name)} is used twice`);
    names.add(id.name);
    const key = `${id.certDir}/${id.identity.filePrefix}`;
    const other = dirs.get(key);
    if (other) throw new ConfigError(`${file}: identities ${other} and ${id.name} would share ${key}-current.pem; give one another certDir or filePrefix`);
    dirs.set(key, id.name);
  }
  const cfg: DaemonConfig = { file, identities };
  if (top['metrics'] !== undefined) {
    const m = dict(top['metrics'], `${file}: metrics`, 'must be a mapping like { address: "127.0.0.1:9717" }');
    onlyKeys(m, new Set(['address']), `${file}: metrics`);
    const address = m['address'] ?? '127.0.0.1:9717';
    if (typeof address !== 'string' || !/^(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}$/.test(address)) {
      throw new ConfigError(`${file}: metrics.address must be host:port, e.g. "127.0.0.1:9717"`);
    }
    cfg.metrics = { address };
  }
  if (top['apiConcurrency'] !== undefined) cfg.apiConcurrency = apiLimit(top['apiConcurrency'], `${file}: apiConcurrency`, 'requests in flight per API server; default 8');
  if (top['apiQps'] !== undefined) cfg.apiQps = apiLimit(top['apiQps'], `${file}: apiQps`, 'requests started per second per API server; default 20');
  return cfg;
}

/** A bound on requests (apiConcurrency, apiQps): a whole number from 1 to 1000. */
export function apiLimit(v: unknown, where: string, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1000) throw new ConfigError(`${where} must be a whole number from 1 to 1000 (${what})`);
  return v;
}

function parseIdentity(entry: unknown, index: number, file: string, dir: string, env: NodeJS.ProcessEnv): IdentityConfig {
  const raw = dict(entry, `${file}: identities[${index}]`, 'must be a mapping');
  const nameValue = raw['name'];
  const label = typeof nameValue === 'string' ? `identities[${index}] (${nameValue})` : `identities[${index}]`;
  const where = (field: string): string => `${file}: ${label}.${field}`;
  onlyKeys(raw, IDENTITY_KEYS, `${file}: ${label}`);
  const str = (k: string): string | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new ConfigError(`${where(k)} must be a non-empty string`);
    return v;
  };
  const filePath = (k: string): string | undefined => {
    const v = str(k);
    return v === undefined ? undefined : path.resolve(dir, expand(v, where(k), env));
  };
  const strList = (k: string): string[] | undefined => stringList(raw[k], where(k));
  const num = (k: string): number | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${where(k)} must be a number`);
    return v;
  };

  const name = str('name');
  if (!name || !isLabel(name)) {
    throw new ConfigError(`${where('name')} is required: lower-case letters, digits and '-'`);
  }
  const kubeconfig = filePath('kubeconfig');
  if (!kubeconfig) throw new ConfigError(`${where('kubeconfig')} is required: the kubeconfig tlsboot writes for this identity`);

  const overrides: IdentityOverrides = {};
  const signerName = str('signerName');
  if (signerName) overrides.signerName = signerName;
  if (raw['subject'] !== undefined) {
    const subj = dict(raw['subject'], where('subject'), 'must be a mapping { commonName, organizations }');
    onlyKeys(subj, new Set(['commonName', 'organizations']), where('subject'));
    if (subj['commonName'] !== undefined) {
      if (typeof subj['commonName'] !== 'string' || subj['commonName'] === '') throw new ConfigError(`${where('subject.commonName')} must be a non-empty string`);
      overrides.commonName = subj['commonName'];
    }
    if (subj['organizations'] !== undefined) {
      const orgs = subj['organizations'];
      if (!Array.isArray(orgs) || !orgs.every((o) => typeof o === 'string')) throw new ConfigError(`${where('subject.organizations')} must be a list of strings`);
      overrides.organizations = orgs as string[];
    }
  }
  const lists: Array<[string, 'usages' | 'dnsNames' | 'ipAddresses']> = [['usages', 'usages'], ['dnsNames', 'dnsNames'], ['ipAddresses', 'ipAddresses']];
  for (const [k, o] of lists) {
    const v = strList(k);
    if (v) overrides[o] = v;
  }
  const keyAlgorithm = str('keyAlgorithm');
  if (keyAlgorithm !== undefined) {
    if (!(KEY_ALGORITHMS as readonly string[]).includes(keyAlgorithm)) throw new ConfigError(`${where('keyAlgorithm')} must be one of ${KEY_ALGORITHMS.join(', ')}`);
    overrides.keyAlgorithm = keyAlgorithm as KeyAlgorithm;
  }
  const expirationSeconds = num('expirationSeconds');
  if (expirationSeconds !== undefined) overrides.expirationSeconds = expirationSeconds;
  const filePrefix = str('filePrefix');
  if (filePrefix) overrides.filePrefix = filePrefix;

  const serving = raw['serving'] ?? false;
  if (typeof serving !== 'boolean') throw new ConfigError(`${where('serving')} must be true or false`);
  if (serving && (raw['bootstrapKubeconfig'] !== undefined || raw['bootstrapTokenFile'] !== undefined)) {
    throw new ConfigError(`${where('serving')}: a serving certificate is requested with kubeconfig, the node's client kubeconfig; remove bootstrapKubeconfig and bootstrapTokenFile`);
  }
  let identity: Identity;
  try {
    const nodeName = str('nodeName') ?? os.hostname().toLowerCase();
    identity = buildIdentity(nodeName, serving ? servingOverrides(nodeName, overrides) : overrides);
  } catch (err) {
    // buildIdentity speaks in flag names; translate to this file's keys.
    const msg = (err as Error).message.replace(/--([a-z-]+)/g, (_m, flag: string) => CONFIG_KEY_OF_FLAG[flag] ?? flag);
    throw new ConfigError(`${file}: ${label}: ${msg}`);
  }

  const rotationFraction = num('rotationFraction');
  if (rotationFraction !== undefined && (rotationFraction <= 0 || rotationFraction >= 1)) {
    throw new ConfigError(`${where('rotationFraction')} must be between 0 and 1 (kubelet rotates at 0.7-0.9)`);
  }
  const keep = num('keep') ?? DEFAULT_KEEP;
  if (!Number.isInteger(keep) || keep < 1) throw new ConfigError(`${where('keep')} must be a whole number of at least 1`);
  const timeout = raw['approvalTimeout'];
  const approvalTimeoutMs = timeout === undefined ? DEFAULT_APPROVAL_TIMEOUT_MS : parseDuration(timeout, where('approvalTimeout'));
  const insecure = raw['allowInsecureBootstrap'];
  if (insecure !== undefined && typeof insecure !== 'boolean') throw new ConfigError(`${where('allowInsecureBootstrap')} must be true or false`);

  const cfg: IdentityConfig = {
    name, kubeconfig,
    certDir: filePath('certDir') ?? path.join('/var/lib/tlsboot', name),
    identity, approvalTimeoutMs, keep, allowInsecureBootstrap: insecure === true,
    outputs: parseOutputs(raw['outputs'], where('outputs'), dir, env),
    hooks: parseHooks(raw['hooks'], where('hooks'), dir, env),
  };
  const bootstrapKubeconfig = filePath('bootstrapKubeconfig');
  if (bootstrapKubeconfig) cfg.bootstrapKubeconfig = bootstrapKubeconfig;
  const tokenFile = filePath('bootstrapTokenFile');
  if (tokenFile) cfg.bootstrapTokenFile = tokenFile;
  if (rotationFraction !== undefined) cfg.rotationFraction = rotationFraction;
  if (serving) cfg.serving = true;
  Object.assign(cfg, trustSettings({
    pins: strList('caCertHashes'), refresh: raw['caRefreshInterval'], jitter: raw['reissueJitter'], remove: raw['removeBootstrapCredential'],
  }, { pins: where('caCertHashes'), refresh: where('caRefreshInterval'), jitter: where('reissueJitter'), remove: where('removeBootstrapCredential') }));
  return cfg;
}

/**
 * The trust settings of an identity, from the config file or the flags (`where` names each):
 * CA pins, the cluster-info refresh interval ("0" turns it off), the re-issue jitter, and
 * whether the bootstrap token is removed once it has served.
 */
export function trustSettings(
  v: { pins?: string[] | undefined; refresh?: unknown; jitter?: unknown; remove?: unknown },
  where: { pins: string; refresh: string; jitter: string; remove: string },
): Pick<IdentitySettings, 'caCertHashes' | 'caRefreshIntervalMs' | 'reissueJitterMs' | 'removeBootstrapCredential'> {
  const out: Pick<IdentitySettings, 'caCertHashes' | 'caRefreshIntervalMs' | 'reissueJitterMs' | 'removeBootstrapCredential'> = {};
  if (v.pins?.length) out.caCertHashes = v.pins.map((p) => parsePin(p, where.pins));
  if (v.refresh !== undefined) out.caRefreshIntervalMs = v.refresh === 0 || v.refresh === '0' ? 0 : parseDuration(v.refresh, where.refresh);
  if (v.jitter !== undefined) out.reissueJitterMs = parseDuration(v.jitter, where.jitter);
  if (v.remove !== undefined) {
    if (typeof v.remove !== 'boolean') throw new ConfigError(`${where.remove} must be true or false`);
    if (v.remove) out.removeBootstrapCredential = true;
  }
  return out;
}

function parseOutputs(v: unknown, where: string, dir: string, env: NodeJS.ProcessEnv): OutputSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${where} must be a list`);
  const seen = new Set<string>();
  return v.map((entry, i) => {
    const w = `${where}[${i}]`;
    const o = dict(entry, w, 'must be a mapping { type, path, owner, group, mode }');
    onlyKeys(o, new Set(['type', 'path', 'owner', 'group', 'mode']), w);
    if (!(OUTPUT_TYPES as readonly unknown[]).includes(o['type'])) throw new ConfigError(`${w}.type must be one of ${OUTPUT_TYPES.join(', ')}`);
    if (typeof o['path'] !== 'string' || o['path'] === '') throw new ConfigError(`${w}.path is required`);
    const p = path.resolve(dir, expand(o['path'], `${w}.path`, env));
    if (seen.has(p)) throw new ConfigError(`${w}.path ${p} is listed twice`);
    seen.add(p);
    const type = o['type'] as OutputType;
    const spec: OutputSpec = { type, path: p, mode: parseMode(o['mode'], `${w}.mode`, type === 'key' || type === 'combined' ? 0o600 : 0o644) };
    for (const k of ['owner', 'group'] as const) {
      if (o[k] === undefined) continue;
      const val = typeof o[k] === 'number' ? String(o[k]) : o[k];
      if (typeof val !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(val)) throw new ConfigError(`${w}.${k} must be a user/group name or number`);
      spec[k] = val;
    }
    return spec;
  });
}

function parseHooks(v: unknown, where: string, dir: string, env: NodeJS.ProcessEnv): HookSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${where} must be a list`);
  return v.map((entry, i): HookSpec => {
    const w = `${where}[${i}]`;
    const h = dict(entry, w, 'must be a mapping');
    if (h['exec'] !== undefined) {
      onlyKeys(h, new Set(['exec', 'timeoutSeconds']), w);
      const argv = h['exec'];
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
        throw new ConfigError(`${w}.exec must be a non-empty list: the program and its arguments (no shell)`);
      }
      const t = h['timeoutSeconds'] ?? 30;
      if (typeof t !== 'number' || !(t > 0) || t * 1000 > MAX_TIMER_MS) {
        throw new ConfigError(`${w}.timeoutSeconds must be a positive number of seconds, at most ${Math.floor(MAX_TIMER_MS / 1000)}`);
      }
      return { kind: 'exec', argv: argv as string[], timeoutMs: t * 1000 };
    }
    if (h['reloadUnit'] !== undefined) {
      onlyKeys(h, new Set(['reloadUnit']), w);
      const unit = h['reloadUnit'];
      if (typeof unit !== 'string' || !/^[\w@:.\\-]+\.(service|socket|target)$/.test(unit)) throw new ConfigError(`${w}.reloadUnit must be a unit name like haproxy.service`);
      return { kind: 'reloadUnit', unit };
    }
    if (h['pidFile'] !== undefined) {
      onlyKeys(h, new Set(['pidFile', 'signal']), w);
      if (typeof h['pidFile'] !== 'string') throw new ConfigError(`${w}.pidFile must be a path`);
      const signal = h['signal'] ?? 'SIGHUP';
      if (typeof signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(signal) || !(signal in os.constants.signals)) {
        throw new ConfigError(`${w}.signal must be a signal name like SIGHUP or SIGUSR2`);
      }
      return { kind: 'signal', pidFile: path.resolve(dir, expand(h['pidFile'], `${w}.pidFile`, env)), signal: signal as NodeJS.Signals };
    }
    throw new ConfigError(`${w} must have exec, reloadUnit or pidFile`);
  });
}

function parseMode(v: unknown, where: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v)) throw new ConfigError(`${where} must be an octal string like "0640" (quote it in YAML)`);
  return parseInt(v, 8);
}

/** ${CREDENTIALS_DIRECTORY}, ${STATE_DIRECTORY} and other variables in paths, from systemd. */
function expand(value: string, where: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') throw new ConfigError(`${where} uses \${${name}}, which is not set (systemd sets CREDENTIALS_DIRECTORY with LoadCredential=)`);
    return v.split(':')[0] ?? v;
  });
}

/** Every folder an identity writes to can exist: checked before any key is made. */
export async function checkPaths(cfg: IdentityConfig, file: string | undefined): Promise<void> {
  const setting = (flag: string, key: string): string => (file ? `${file}: identity ${cfg.name}: ${key}` : flag);
  await checkFolderPath(cfg.certDir, setting('--cert-dir', 'certDir'));
  await checkFolderPath(path.dirname(cfg.kubeconfig), setting('--kubeconfig', 'kubeconfig'), cfg.kubeconfig);
  for (const [i, o] of cfg.outputs.entries()) await checkFolderPath(path.dirname(o.path), setting('', `outputs[${i}].path`), o.path);
}
