// The cluster-side commands, registered here: token create|list|delete (token.ts), cluster
// rbac|init|approver (here), kubeconfig bootstrap (kubeconfig.ts), bundle (bundle.ts).
// They take an admin --kubeconfig; --dry-run prints the manifests (-o yaml|json) and applies
// nothing. Token material goes to stdout once or to a 0600 file, never to logs.
import type { Argv } from 'yargs';
import { ConfigError, ExitCode, type ExitCodeValue } from '../base/errors.js';
import { writeFileAtomic } from '../base/fsutil.js';
import { parseDuration } from '../base/time.js';
import { admin, adminFile, adminKubeconfig, applyAll, guard, kubeconfigLib, lib, makeToken, MAX_TTL_MS, print, rbacOptions, readCa, tokenOptions, type Common, type Handler } from './admin.js';
import { bundle } from './bundle.js';
import type { Io } from './io.js';
import { kubeconfigBootstrap, kubeconfigExec } from './kubeconfig.js';
import { tokenCreate, tokenDelete, tokenList } from './token.js';
import { spkiPin } from '../pki/pin.js';

/** Register the cluster-side commands; `run` is given each handler and keeps its exit code. */
export function clusterCommands(y: Argv, io: Io, run: (h: () => Promise<ExitCodeValue>) => Promise<void>): Argv {
  const wrap = <A>(h: Handler<A>) => (a: unknown): Promise<void> => run(() => guard(() => h(a as A, io), io));
  return y
    .command('token', 'bootstrap tokens', (t) => t
      .command('create', 'create a bootstrap token and its Secret; prints the token once', (c) => c.options({ ...admin, ...tokenOptions, out: { type: 'string', describe: 'write the token to this file (0600) instead of stdout' } }), wrap(tokenCreate))
      .command('list', 'list bootstrap tokens (never their secrets)', (c) => c.options({ kubeconfig: adminKubeconfig, output: { alias: 'o', type: 'string', choices: ['table', 'json'], default: 'table' } }), wrap(tokenList))
      .command('delete <id>', 'delete a bootstrap token', (c) => c.options({ kubeconfig: adminKubeconfig }).positional('id', { type: 'string', demandOption: true }), wrap(tokenDelete))
      .demandCommand(1, 'name a token command: create, list or delete'))
    .command('cluster', 'the cluster side of TLS bootstrap', (t) => t
      .command('rbac', 'apply kubeadm\'s TLS-bootstrap bindings, system:kube-apiserver-to-kubelet, and cluster-info with its anonymous read (idempotent)', (c) => c.options({
        ...admin, ...rbacOptions,
        server: { type: 'string', describe: 'API server URL published in cluster-info (default: the admin kubeconfig\'s)' },
        ca: { type: 'string', describe: 'CA bundle published in cluster-info (default: the admin kubeconfig\'s)' },
      }), wrap(clusterRbac))
      .command('info', 'publish the API server URL and CA bundle nodes trust in kube-public/cluster-info (a CA rotation: add the new CA, later drop the old)', (c) => c.options({
        kubeconfig: adminKubeconfig,
        ca: { type: 'string', demandOption: true, describe: 'the CA bundle nodes should trust (one or more PEM certificates)' },
        server: { type: 'string', describe: 'API server URL for nodes (default: the admin kubeconfig\'s)' },
      }), wrap(clusterInfo))
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
      .demandCommand(1, 'name a cluster command: rbac, init, info or approver'))
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
        ca: { type: 'string', describe: 'cluster CA file (or --discover)' },
        discover: { type: 'boolean', default: false, describe: 'take the CA from kube-public/cluster-info, verified with the token (kubeadm join\'s discovery)' },
        'ca-cert-hash': { type: 'string', array: true, describe: 'with --discover: sha256:<hex> pin of the CA\'s public key, repeatable; only CAs it names are trusted' },
        token: { type: 'string', describe: 'bootstrap token (visible to other local users in ps; prefer --token-file)' },
        'token-file': { type: 'string', describe: 'file holding the bootstrap token' },
        'tls-server-name': { type: 'string', describe: 'server name to verify, when the URL is an IP the certificate does not name' },
        out: { type: 'string', demandOption: true, describe: 'where to write it (0600)' },
      }), wrap(kubeconfigBootstrap))
      .command('exec', 'write a kubeconfig whose user is the exec plugin tlsboot credential', (c) => c.options({
        kubeconfig: { type: 'string', demandOption: true, describe: 'the kubeconfig tlsboot run writes' },
        out: { type: 'string', demandOption: true, describe: 'where to write it (0600)' },
        command: { type: 'string', default: 'tlsboot', describe: 'how client-go starts tlsboot (an absolute path, or a name on PATH)' },
        user: { type: 'string', default: 'tlsboot', describe: 'the user entry\'s name' },
      }), wrap(kubeconfigExec))
      .demandCommand(1, 'name a kubeconfig command: bootstrap or exec'));
}

type RbacArgs = Common & { group: string; 'apiserver-kubelet-user': string; server?: string; ca?: string };

const clusterRbac: Handler<RbacArgs> = async (a, io) => {
  const { checkGroups, clusterInfoObjects, rbacObjects } = await lib();
  checkGroups([a.group]);
  // cluster-info needs a server and a CA: from the admin kubeconfig, or the flags on a dry run.
  const target = a.kubeconfig || (a.server && a.ca) ? await nodeTarget(a) : undefined;
  const objs = [...rbacObjects(a.group, a['apiserver-kubelet-user']), ...clusterInfoObjects(target && { server: target.server, caPems: await caList(target.caPem) })];
  if (a['dry-run']) await print(objs, a.output, io);
  else await applyAll(adminFile(a), objs, io);
  return ExitCode.ok;
};

const clusterInit: Handler<RbacArgs & { ttl: string; groups: string[]; description?: string; out: string }> = async (a, io) => {
  const [{ checkGroups, clusterInfoObjects, rbacObjects }, { renderBootstrapKubeconfig }] = await Promise.all([lib(), kubeconfigLib()]);
  checkGroups([a.group]);
  const groups = a.groups.includes(a.group) ? a.groups : [...a.groups, a.group];
  const target = await nodeTarget(a);
  const objs = [...rbacObjects(a.group, a['apiserver-kubelet-user']), ...clusterInfoObjects({ server: target.server, caPems: await caList(target.caPem) })];
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

/** The certificates of a CA bundle (pki/certs loads only when a command needs it). */
async function caList(bundle: string): Promise<string[]> {
  return (await import('../pki/certs.js')).caList(bundle);
}

/** `cluster info`: what cluster-info tells nodes to trust, replaced (the CA rotation's step). */
const clusterInfo: Handler<{ kubeconfig: string; ca: string; server?: string }> = async (a, io) => {
  const { adminClient, adminError, publishClusterInfo } = await lib();
  const caPems = await caList(await readCa(a.ca));
  const { api, server } = await adminClient(a.kubeconfig);
  try {
    const action = await publishClusterInfo(api, a.server ?? server, caPems).catch((err: unknown) => {
      throw adminError(err, a.kubeconfig);
    });
    io.stdout(`configmap/cluster-info ${action}: ${caPems.length} CA(s), ${caPems.map(spkiPin).join(', ')}\n`);
  } finally {
    await api.close();
  }
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

const clusterApprover: Handler<Common & { policy: string; user: string; ttl: string; server?: string }> = async (a, io) => {
  const [{ adminClient, adminError, approverRbacObjects, issueClientCertificate }, { loadPolicy, needsNodes, policySigners, requesterGroups }, { renderClientKubeconfig }] =
    await Promise.all([lib(), import('../approver/policy.js'), kubeconfigLib()]);
  const policy = await loadPolicy(a.policy);
  if (!a.user) throw new ConfigError('--user must not be empty');
  const objs = approverRbacObjects(policySigners(policy), a.user, requesterGroups(policy), needsNodes(policy));
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
