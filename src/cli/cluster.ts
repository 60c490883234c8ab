// The cluster-side commands: token create|list|delete, cluster rbac|init|approver, kubeconfig
// bootstrap, bundle.
// They take an admin --kubeconfig; --dry-run prints the manifests (-o yaml|json) and applies
// nothing. Token material goes to stdout once or to a 0600 file, never to logs.
import type { Argv, Options } from 'yargs';
import type { K8sObject } from '../cluster/cluster.js';
import { DEFAULT_BOOTSTRAP_GROUP, isBootstrapToken } from '../kube/vocabulary.js';

const TOKEN_SHAPE_ERROR = 'the token must look like abcdef.0123456789abcdef ([a-z0-9]{6}.[a-z0-9]{16})';
import { ConfigError, ExitCode, reportError, type ExitCodeValue } from '../base/errors.js';
import { redact } from '../base/log.js';
import type { Io } from './io.js';
import { readInputFile, writeFileAtomic } from '../base/fsutil.js';
import { parseDuration } from '../base/time.js';

interface Common {
  kubeconfig?: string;
  'dry-run': boolean;
  output: string;
  out?: string;
}

const adminKubeconfig: Options = { type: 'string', demandOption: true, describe: 'an admin kubeconfig (cluster-admin, e.g. kubeadm\'s admin.conf)' };
// The commands that can print what they would apply need no cluster for it: --kubeconfig is
// checked in the handler, so a dry run works offline (like `kubeadm token generate`).
const admin: Record<string, Options> = {
  kubeconfig: { type: 'string', describe: 'an admin kubeconfig (cluster-admin, e.g. kubeadm\'s admin.conf); not needed with --dry-run' },
  'dry-run': { type: 'boolean', default: false, describe: 'apply nothing; print the manifests' },
  output: { alias: 'o', type: 'string', choices: ['yaml', 'json'], default: 'yaml', describe: 'manifest format for --dry-run' },
};
const tokenOptions: Record<string, Options> = {
  ttl: { type: 'string', default: '24h', describe: 'token lifetime (0: never expires)' },
  groups: { type: 'string', array: true, default: [DEFAULT_BOOTSTRAP_GROUP], describe: 'extra groups (system:bootstrappers:...), repeatable' },
  description: { type: 'string', describe: 'a note stored with the token' },
};
const rbacOptions: Record<string, Options> = {
  group: { type: 'string', default: DEFAULT_BOOTSTRAP_GROUP, describe: 'the bootstrap group that may create and auto-approve node CSRs' },
  'apiserver-kubelet-user': { type: 'string', default: 'kube-apiserver-kubelet-client', describe: 'the API server\'s client identity towards kubelets' },
};

type Handler<A> = (a: A, io: Io) => Promise<ExitCodeValue>;

/** Register the commands; `done` receives each handler's exit code. */
export function clusterCommands(y: Argv, io: Io, run: (h: () => Promise<ExitCodeValue>) => Promise<void>): Argv {
  const wrap = <A>(h: Handler<A>) => (a: unknown): Promise<void> => run(() => guard(() => h(a as A, io), io));
  return y
    .command('token', 'bootstrap tokens', (t) => t
      .command('create', 'create a bootstrap token and its Secret; prints the token once', (c) => c.options({ ...admin, ...tokenOptions, out: { type: 'string', describe: 'write the token to this file (0600) instead of stdout' } }), wrap(tokenCreate))
      .command('list', 'list bootstrap tokens (never their secrets)', (c) => c.options({ kubeconfig: adminKubeconfig, output: { alias: 'o', type: 'string', choices: ['table', 'json'], default: 'table' } }), wrap(tokenList))
      .command('delete <id>', 'delete a bootstrap token', (c) => c.options({ kubeconfig: adminKubeconfig }).positional('id', { type: 'string', demandOption: true }), wrap(tokenDelete))
      .demandCommand(1, 'name a token command: create, list or delete'))
    .command('cluster', 'the cluster side of TLS bootstrap', (t) => t
      .command('rbac', 'apply kubeadm\'s TLS-bootstrap bindings and system:kube-apiserver-to-kubelet (idempotent)', (c) => c.options({ ...admin, ...rbacOptions }), wrap(clusterRbac))
      .command('init', 'RBAC + a new token + a bootstrap kubeconfig, in one go', (c) => c.options({
        ...admin, ...rbacOptions, ...tokenOptions,
        server: { type: 'string', describe: 'API server URL for nodes (default: the admin kubeconfig\'s)' },
        ca: { type: 'string', describe: 'cluster CA file for nodes (default: the admin kubeconfig\'s)' },
        out: { type: 'string', demandOption: true, describe: 'where to write the bootstrap kubeconfig (0600)' },
      }), wrap(clusterInit))
      .command('approver', 'the policy approver\'s least-privilege RBAC, and with --out a kubeconfig for it', (c) => c.options({
        ...admin, kubeconfig: adminKubeconfig,
        policy: { type: 'string', demandOption: true, describe: 'the approval policy: its signers are the only ones the approver may approve' },
        user: { type: 'string', default: 'tlsboot:approver', describe: 'the identity the approver runs as' },
        out: { type: 'string', describe: 'also issue a client certificate for --user and write its kubeconfig here (0600)' },
        ttl: { type: 'string', default: '8760h', describe: 'lifetime of that certificate (the signer may cap it)' },
        server: { type: 'string', describe: 'API server URL in that kubeconfig (default: the admin kubeconfig\'s)' },
      }), wrap(clusterApprover))
      .demandCommand(1, 'name a cluster command: rbac, init or approver'))
    .command('bundle', 'everything one node needs (bootstrap kubeconfig, token, config, units, install.sh)', (c) => c.options({
      node: { type: 'string', demandOption: true, describe: 'the node\'s name' },
      identity: { type: 'string', choices: ['kubelet', 'haproxy', 'keepalived'], default: 'kubelet' },
      out: { type: 'string', demandOption: true, describe: 'a folder, or FILE.tar.gz' },
      kubeconfig: { type: 'string', describe: 'an admin kubeconfig: mint a new token for this node (unless --token-file)' },
      'token-file': { type: 'string', describe: 'use this bootstrap token instead of minting one' },
      server: { type: 'string', describe: 'API server URL for the node (default: the admin kubeconfig\'s)' },
      ca: { type: 'string', describe: 'cluster CA file (default: the admin kubeconfig\'s)' },
      ttl: tokenOptions['ttl']!,
      groups: tokenOptions['groups']!,
    }), wrap(bundle))
    .command('kubeconfig', 'kubeconfig files', (t) => t
      .command('bootstrap', 'write a bootstrap kubeconfig (CA embedded)', (c) => c.options({
        server: { type: 'string', demandOption: true, describe: 'API server URL' },
        ca: { type: 'string', demandOption: true, describe: 'cluster CA file' },
        token: { type: 'string', describe: 'bootstrap token (visible to other local users in ps; prefer --token-file)' },
        'token-file': { type: 'string', describe: 'file holding the bootstrap token' },
        'tls-server-name': { type: 'string', describe: 'server name to verify, when the URL is an IP the certificate does not name' },
        out: { type: 'string', demandOption: true, describe: 'where to write it (0600)' },
      }), wrap(kubeconfigBootstrap))
      .demandCommand(1, 'name a kubeconfig command: bootstrap'));
}

/** The cluster commands' errors: one `tlsboot: ...` line, redacted, with the error's exit code. */
async function guard(h: () => Promise<ExitCodeValue>, io: Io): Promise<ExitCodeValue> {
  try {
    return await h();
  } catch (err) {
    return reportError(err, { error: (msg) => io.stderr(`tlsboot: ${redact(msg)}\n`) });
  }
}

const lib = (): Promise<typeof import('../cluster/cluster.js')> => import('../cluster/cluster.js');
const kubeconfigLib = (): Promise<typeof import('../kube/kubeconfig.js')> => import('../kube/kubeconfig.js');

/** The admin kubeconfig, which every command needs unless it only prints (--dry-run). */
function adminFile(a: { kubeconfig?: string }): string {
  if (!a.kubeconfig) throw new ConfigError('--kubeconfig is required: give an admin kubeconfig, or --dry-run to print the manifests without a cluster');
  return a.kubeconfig;
}

async function readCa(file: string): Promise<string> {
  const caPem = await readInputFile(file, { setting: '--ca' });
  if (!caPem.includes('BEGIN CERTIFICATE')) throw new ConfigError(`--ca ${file}: holds no PEM certificate`);
  return caPem;
}

async function print(objs: readonly unknown[], format: string, io: Io): Promise<void> {
  const { stringify: stringifyYaml } = await import('yaml');
  io.stdout(format === 'json'
    ? JSON.stringify(objs.length === 1 ? objs[0] : { apiVersion: 'v1', kind: 'List', items: objs }, null, 2) + '\n'
    : objs.map((o) => stringifyYaml(o, { lineWidth: 0 })).join('---\n'));
}

/** Lifetimes become timestamps, not timers: up to ten years. */
const MAX_TTL_MS = 10 * 8760 * 3_600_000;

function ttlOf(ttl: string): number | undefined {
  return ttl === '0' || ttl === '0s' ? undefined : parseDuration(ttl, '--ttl', MAX_TTL_MS);
}

async function applyAll(file: string, objs: K8sObject[], io: Io): Promise<void> {
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

async function makeToken(a: Common & { ttl: string; groups: string[]; description?: string }, io: Io): Promise<{ value: string; secret: K8sObject } | undefined> {
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

const tokenCreate: Handler<Common & { ttl: string; groups: string[]; description?: string }> = async (a, io) => {
  const made = await makeToken(a, io);
  if (!made) return ExitCode.runtime;
  if (a['dry-run']) {
    await print([made.secret], a.output, io);
    return ExitCode.ok;
  }
  if (a.out) {
    await writeFileAtomic(a.out, made.value + '\n', { mode: 0o600 });
    io.stderr(`token written to ${a.out}\n`);
  } else {
    io.stdout(made.value + '\n');
  }
  return ExitCode.ok;
};

const tokenList: Handler<{ kubeconfig: string; output: string }> = async (a, io) => {
  const { adminClient, adminError, listTokens } = await lib();
  const { api } = await adminClient(a.kubeconfig);
  try {
    const rows = await listTokens(api).catch((err: unknown) => {
      throw adminError(err, a.kubeconfig);
    });
    if (a.output === 'json') {
      io.stdout(JSON.stringify(rows, null, 2) + '\n');
    } else {
      const table = [['ID', 'EXPIRES', 'GROUPS', 'USAGES', 'DESCRIPTION'],
        ...rows.map((r) => [r.id, r.expiration ? `${r.expiration}${r.expired ? ' (expired)' : ''}` : '<never>', r.groups.join(',') || '<none>', r.usages.join(','), r.description ?? ''])];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      io.stdout(table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n') + '\n');
    }
  } finally {
    await api.close();
  }
  return ExitCode.ok;
};

const tokenDelete: Handler<{ kubeconfig: string; id: string }> = async (a, io) => {
  const { adminClient, adminError, deleteToken } = await lib();
  const { api } = await adminClient(a.kubeconfig);
  try {
    await deleteToken(api, a.id).catch((err: unknown) => {
      throw adminError(err, a.kubeconfig);
    });
  } finally {
    await api.close();
  }
  io.stdout(`bootstrap token ${a.id} deleted\n`);
  return ExitCode.ok;
};

type RbacArgs = Common & { group: string; 'apiserver-kubelet-user': string };

const clusterRbac: Handler<RbacArgs> = async (a, io) => {
  const { checkGroups, rbacObjects } = await lib();
  checkGroups([a.group]);
  const objs = rbacObjects(a.group, a['apiserver-kubelet-user']);
  if (a['dry-run']) await print(objs, a.output, io);
  else await applyAll(adminFile(a), objs, io);
  return ExitCode.ok;
};

const clusterInit: Handler<RbacArgs & { ttl: string; groups: string[]; description?: string; server?: string; ca?: string; out: string }> = async (a, io) => {
  const [{ checkGroups, rbacObjects }, { renderBootstrapKubeconfig }] = await Promise.all([lib(), kubeconfigLib()]);
  checkGroups([a.group]);
  const groups = a.groups.includes(a.group) ? a.groups : [...a.groups, a.group];
  const objs = rbacObjects(a.group, a['apiserver-kubelet-user']);
  const target = await nodeTarget(a);
  if (a['dry-run']) {
    const made = await makeToken({ ...a, groups }, io);
    const { parse } = await import('yaml');
    const kubeconfig: unknown = parse(renderBootstrapKubeconfig({ ...target, token: made!.value }));
    await print([...objs, made!.secret, kubeconfig], a.output, io);
    return ExitCode.ok;
  }
  await applyAll(adminFile(a), objs, io);
  const made = await makeToken({ ...a, groups }, io);
  await writeFileAtomic(a.out, renderBootstrapKubeconfig({ ...target, token: made!.value }), { mode: 0o600 });
  io.stdout(`bootstrap kubeconfig written to ${a.out}\n`);
  return ExitCode.ok;
};

/** The server and CA that nodes get: the flags, else the admin kubeconfig's. */
async function nodeTarget(a: { kubeconfig?: string; server?: string; ca?: string; 'dry-run': boolean }): Promise<{ server: string; caPem: string; tlsServerName?: string }> {
  if (!a.kubeconfig) {
    if (!a['dry-run']) adminFile(a);
    if (!a.server || !a.ca) throw new ConfigError('--dry-run without --kubeconfig needs --server and --ca: the API server URL and CA file that nodes will use');
    return { server: a.server, caPem: await readCa(a.ca) };
  }
  const { adminClient } = await lib();
  const { api, server, caPem, tlsServerName } = await adminClient(a.kubeconfig);
  await api.close();
  const ca = a.ca ? await readCa(a.ca) : caPem;
  if (!ca) throw new ConfigError(`${a.kubeconfig}: has no certificate-authority(-data) to hand on to nodes; give --ca`);
  return { server: a.server ?? server, caPem: ca, ...(tlsServerName ? { tlsServerName } : {}) };
}

const kubeconfigBootstrap: Handler<{ server: string; ca: string; token?: string; 'token-file'?: string; 'tls-server-name'?: string; out: string }> = async (a, io) => {
  if (Boolean(a.token) === Boolean(a['token-file'])) throw new ConfigError('give exactly one of --token and --token-file');
  const token = a.token ?? (await readInputFile(a['token-file']!, { setting: '--token-file' })).trim();
  if (!isBootstrapToken(token)) throw new ConfigError(TOKEN_SHAPE_ERROR);
  let url: URL;
  try {
    url = new URL(a.server);
  } catch {
    throw new ConfigError(`--server ${JSON.stringify(a.server)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ConfigError('--server must be an https:// URL');
  const { renderBootstrapKubeconfig } = await kubeconfigLib();
  const caPem = await readCa(a.ca);
  await writeFileAtomic(a.out, renderBootstrapKubeconfig({ server: a.server.replace(/\/+$/, ''), caPem, token, ...(a['tls-server-name'] ? { tlsServerName: a['tls-server-name'] } : {}) }), { mode: 0o600 });
  io.stdout(`bootstrap kubeconfig written to ${a.out}\n`);
  return ExitCode.ok;
};

const bundle: Handler<{ node: string; identity: string; out: string; kubeconfig?: string; 'token-file'?: string; server?: string; ca?: string; ttl: string; groups: string[] }> = async (a, io) => {
  const { writeBundle } = await import('../cluster/bundle.js');
  let server = a.server;
  let caPem = a.ca ? await readCa(a.ca) : undefined;
  let token: string;
  if (a['token-file']) {
    token = (await readInputFile(a['token-file'], { setting: '--token-file' })).trim();
  } else {
    if (!a.kubeconfig) throw new ConfigError('give --kubeconfig (an admin kubeconfig, to mint a token for this node) or --token-file');
    const made = await makeToken({ kubeconfig: a.kubeconfig, 'dry-run': false, output: 'yaml', ttl: a.ttl, groups: a.groups, description: `tlsboot bundle for ${a.node}` }, io);
    token = made!.value;
  }
  if (a.kubeconfig && (!server || !caPem)) {
    const { adminClient } = await lib();
    const adm = await adminClient(a.kubeconfig);
    await adm.api.close();
    server ??= adm.server;
    caPem ??= adm.caPem;
  }
  if (!server || !caPem) throw new ConfigError('give --server and --ca (or --kubeconfig to take them from)');
  if (!isBootstrapToken(token)) throw new ConfigError(TOKEN_SHAPE_ERROR);
  const service = await writeBundle({ node: a.node, identity: a.identity as 'kubelet', server, caPem, token, out: a.out });
  io.stdout(`bundle for ${a.node} (${service}) written to ${a.out}; on the node run install.sh from it\n`);
  return ExitCode.ok;
};

const clusterApprover: Handler<Common & { policy: string; user: string; ttl: string; server?: string }> = async (a, io) => {
  const [{ adminClient, adminError, approverRbacObjects, issueClientCertificate }, { loadPolicy, policySigners, requesterGroups }, { renderClientKubeconfig }] =
    await Promise.all([lib(), import('../approver/policy.js'), kubeconfigLib()]);
  const policy = await loadPolicy(a.policy);
  if (!a.user) throw new ConfigError('--user must not be empty');
  const objs = approverRbacObjects(policySigners(policy), a.user, requesterGroups(policy));
  if (a['dry-run']) {
    await print(objs, a.output, io);
    return ExitCode.ok;
  }
  const file = adminFile(a);
  await applyAll(file, objs, io);
  if (!a.out) return ExitCode.ok;
  const ttlMs = parseDuration(a.ttl, '--ttl', MAX_TTL_MS);
  if (ttlMs < 600_000) throw new ConfigError('--ttl must be at least 10m (the API refuses shorter certificates)');
  const { api, server, caPem, tlsServerName } = await adminClient(file);
  try {
    if (!caPem) throw new ConfigError(`${file}: has no certificate-authority(-data) to put in the approver's kubeconfig`);
    const { certPem, keyPem } = await issueClientCertificate(api, a.user, Math.round(ttlMs / 1000), AbortSignal.timeout(150_000))
      .catch((err: unknown) => {
        throw adminError(err, file);
      });
    await writeFileAtomic(a.out, renderClientKubeconfig({ server: a.server ?? server, caPem, user: a.user, certPem, keyPem, ...(tlsServerName ? { tlsServerName } : {}) }), { mode: 0o600 });
  } finally {
    await api.close();
  }
  io.stdout(`kubeconfig for ${a.user} written to ${a.out}\n`);
  return ExitCode.ok;
};
