// What the cluster-side commands share: the admin kubeconfig and its flags, printing manifests
// for --dry-run, applying them, minting a token, and one error line for all of them.
import type { Options } from 'yargs';
import { ConfigError, reportError, type ExitCodeValue } from '../base/errors.js';
import { readInputFile } from '../base/fsutil.js';
import { redact } from '../base/log.js';
import { parseDuration } from '../base/time.js';
import type { K8sObject } from '../cluster/cluster.js';
import { DEFAULT_BOOTSTRAP_GROUP } from '../kube/vocabulary.js';
import type { Io } from './io.js';

export const TOKEN_SHAPE_ERROR = 'the token must be its 6-character id and 16-character secret ([a-z0-9]) joined by a dot, as tlsboot token create prints it';

export interface Common {
  kubeconfig?: string;
  'dry-run': boolean;
  output: string;
  out?: string;
}

export const adminKubeconfig: Options = { type: 'string', demandOption: true, describe: 'an admin kubeconfig (cluster-admin, e.g. kubeadm\'s admin.conf)' };
// The commands that can print what they would apply need no cluster for it: --kubeconfig is
// checked in the handler, so a dry run works offline (like `kubeadm token generate`).
export const admin: Record<string, Options> = {
  kubeconfig: { type: 'string', describe: 'an admin kubeconfig (cluster-admin, e.g. kubeadm\'s admin.conf); not needed with --dry-run' },
  'dry-run': { type: 'boolean', default: false, describe: 'apply nothing; print the manifests' },
  output: { alias: 'o', type: 'string', choices: ['yaml', 'json'], default: 'yaml', describe: 'manifest format for --dry-run' },
};
export const tokenOptions: Record<string, Options> = {
  ttl: { type: 'string', default: '24h', describe: 'token lifetime (0: never expires)' },
  groups: { type: 'string', array: true, default: [DEFAULT_BOOTSTRAP_GROUP], describe: 'extra groups (system:bootstrappers:...), repeatable' },
  description: { type: 'string', describe: 'a note stored with the token' },
};
export const rbacOptions: Record<string, Options> = {
  group: { type: 'string', default: DEFAULT_BOOTSTRAP_GROUP, describe: 'the bootstrap group that may create and auto-approve node CSRs' },
  'apiserver-kubelet-user': { type: 'string', default: 'kube-apiserver-kubelet-client', describe: 'the API server\'s client identity towards kubelets' },
};

export type Handler<A> = (a: A, io: Io) => Promise<ExitCodeValue>;

/** The cluster commands' errors: one `tlsboot: ...` line, redacted, with the error's exit code. */
export async function guard(h: () => Promise<ExitCodeValue>, io: Io): Promise<ExitCodeValue> {
  try {
    return await h();
  } catch (err) {
    return reportError(err, { error: (msg) => io.stderr(`tlsboot: ${redact(msg)}\n`) });
  }
}

export const lib = (): Promise<typeof import('../cluster/cluster.js')> => import('../cluster/cluster.js');
export const kubeconfigLib = (): Promise<typeof import('../kube/kubeconfig.js')> => import('../kube/kubeconfig.js');

/** The admin kubeconfig, which every command needs unless it only prints (--dry-run). */
export function adminFile(a: { kubeconfig?: string }): string {
  if (!a.kubeconfig) throw new ConfigError('--kubeconfig is required: give an admin kubeconfig, or --dry-run to print the manifests without a cluster');
  return a.kubeconfig;
}

export async function readCa(file: string): Promise<string> {
  const caPem = await readInputFile(file, { setting: '--ca' });
  if (!caPem.includes('BEGIN CERTIFICATE')) throw new ConfigError(`--ca ${file}: holds no PEM certificate`);
  return caPem;
}

export async function print(objs: readonly unknown[], format: string, io: Io): Promise<void> {
  const { stringify: stringifyYaml } = await import('yaml');
  io.stdout(format === 'json'
    ? JSON.stringify(objs.length === 1 ? objs[0] : { apiVersion: 'v1', kind: 'List', items: objs }, null, 2) + '\n'
    : objs.map((o) => stringifyYaml(o, { lineWidth: 0 })).join('---\n'));
}

/** Lifetimes become timestamps, not timers: up to ten years. */
export const MAX_TTL_MS = 10 * 8760 * 3_600_000;

export function ttlOf(ttl: string): number | undefined {
  return ttl === '0' || ttl === '0s' ? undefined : parseDuration(ttl, '--ttl', MAX_TTL_MS);
}

export async function applyAll(file: string, objs: K8sObject[], io: Io): Promise<void> {
  const { adminClient, adminError, applyObject } = await lib();
  const { api } = await adminClient(file);
  try {
    const actions: string[] = [];
    for (const o of objs) {
      const action = await applyObject(api, o).catch((err: unknown) => {
        throw adminError(err, file);
      });
      actions.push(action);
      io.stdout(`${o.kind.toLowerCase()}/${o.metadata.name} ${action}\n`);
    }
    if (actions.every((a) => a === 'unchanged')) io.stdout('nothing to change\n');
  } finally {
    await api.close();
  }
}

export async function makeToken(a: Common & { ttl: string; groups: string[]; description?: string }, io: Io): Promise<{ value: string; secret: K8sObject } | undefined> {
  const { adminClient, adminError, checkGroups, createSecret, generateToken, tokenSecret } = await lib();
  checkGroups(a.groups);
  const token = generateToken();
  const ttlMs = ttlOf(a.ttl);
  const secret = tokenSecret(token, { groups: a.groups, ...(ttlMs ? { ttlMs } : {}), ...(a.description ? { description: a.description } : {}) });
  if (a['dry-run']) return { value: token.value, secret };
  const file = adminFile(a);
  const { api } = await adminClient(file);
  try {
    await createSecret(api, secret).catch((err: unknown) => {
      throw adminError(err, file);
    });
  } finally {
    await api.close();
  }
  io.stderr(`created bootstrap token ${token.id}${ttlMs ? `, expires ${String((secret['stringData'] as Record<string, string>)['expiration'])}` : ', never expires'}\n`);
  return { value: token.value, secret };
}
