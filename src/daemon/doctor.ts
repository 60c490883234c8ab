// `tlsboot doctor`: on a node, with only the node's credentials, find why bootstrap or rotation
// does not work. Checks run in order and stop at the first failure, each with a plain
// explanation and the command that fixes it; warnings do not stop the run.
import { X509Certificate } from 'node:crypto';
import { clientFor, type ApiClient, type Credentials } from '../kube/api.js';
import { type CsrObject } from '../kube/csrtypes.js';
import type { IdentityConfig } from './config.js';
import { ApiError, errorMessage } from '../base/errors.js';
import { usagesFor } from '../node/identity.js';
import { approveHint, isBootstrapToken, KUBELET_CLIENT_SIGNER } from '../kube/vocabulary.js';
import { readKubeconfig, type ClientConfig } from '../kube/kubeconfig.js';
import { rotationWindow } from '../node/deadline.js';
import { NO_BOOTSTRAP_CREDENTIAL, readBootstrap, readCurrent } from '../node/credentials.js';
import { discoverCas, isUntrustedServer, issuedByOneOf } from '../node/trust.js';
import { caList } from '../pki/certs.js';
import { clusterTrust, explainUntrusted } from './trustcheck.js';
import { CertStore } from '../node/store.js';
import { USER_AGENT } from '../base/version.js';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Check {
  check: string;
  verdict: Verdict;
  detail: string;
  fix?: string;
}

interface Ctx {
  cfg: IdentityConfig;
  now: Date;
  cluster?: ClientConfig;
  credentials?: Credentials;
  via?: 'certificate' | 'token';
  api?: ApiClient;
  user?: { username: string; groups: string[] };
}

type Step = (ctx: Ctx) => Promise<Check | Check[]>;


export async function runDoctor(cfg: IdentityConfig, now = new Date()): Promise<Check[]> {
  const ctx: Ctx = { cfg, now };
  const checks: Check[] = [];
  const steps: Step[] = [credentials, server, authentication, csrPermission, autoApproval, csrShape, ourCsrs, certificate, trust, bootstrapCredential];
  try {
    for (const step of steps) {
      const result = await step(ctx);
      const list = Array.isArray(result) ? result : [result];
      checks.push(...list);
      if (list.some((c) => c.verdict === 'fail')) break;
    }
  } finally {
    await ctx.api?.close();
  }
  return checks;
}

/** Which credentials rotation would use now, decided as the agent decides: node/credentials. */
async function credentials(ctx: Ctx): Promise<Check> {
  const { cfg } = ctx;
  const { current, problem } = await readCurrent(cfg.kubeconfig, ctx.now);
  if (current) {
    Object.assign(ctx, { cluster: current.config, via: 'certificate', credentials: { kind: 'certificate', ...current.cert } });
    return { check: 'credentials', verdict: 'ok', detail: `the client certificate in ${cfg.kubeconfig} (valid)` };
  }
  if (problem?.kind === 'mismatch') {
    const cc = (await readKubeconfig(cfg.kubeconfig)).clientCertificate;
    return { check: 'credentials', verdict: 'fail', detail: `the key in ${cc?.keyPath ?? cfg.kubeconfig} does not match its certificate`, fix: `remove ${cc?.certPath ?? cfg.kubeconfig}; tlsboot run then bootstraps again` };
  }
  let boot: Awaited<ReturnType<typeof readBootstrap>>;
  try {
    boot = await readBootstrap(cfg);
  } catch (err) {
    const fix = cfg.bootstrapKubeconfig ? 'fix or re-create the bootstrap kubeconfig (tlsboot kubeconfig bootstrap) or the token file' : 'pass --bootstrap-kubeconfig (tlsboot kubeconfig bootstrap writes one)';
    return { check: 'credentials', verdict: 'fail', detail: errorMessage(err), fix };
  }
  const source = boot.config.tokenFile ?? cfg.bootstrapKubeconfig;
  if (boot.credentials.kind === 'token') {
    const token = boot.credentials.token;
    if (!isBootstrapToken(token)) {
      return { check: 'credentials', verdict: 'fail', detail: 'the bootstrap token is not in the [a-z0-9]{6}.[a-z0-9]{16} format, so the bootstrap-token authenticator ignores it', fix: 'create a proper one: tlsboot token create --kubeconfig ADMIN' };
    }
    let cluster = boot.config;
    let discovered = '';
    if (!cluster.caPem && !cluster.insecureSkipTlsVerify) {
      try {
        const cas = await discoverCas(cluster, token, cfg.caCertHashes ?? []);
        cluster = { ...cluster, caPem: cas.join('') };
        discovered = `; no CA in it: ${cas.length} CA(s) from cluster-info, verified with the token${cfg.caCertHashes?.length ? ' and the pins' : ''}`;
      } catch (err) {
        return { check: 'credentials', verdict: 'fail', detail: `the bootstrap kubeconfig names no CA, and discovery from cluster-info failed: ${errorMessage(err)}`, fix: 'check the server URL, the token and --ca-cert-hash; or put the cluster CA in the bootstrap kubeconfig' };
      }
    }
    Object.assign(ctx, { cluster, via: 'token', credentials: boot.credentials });
    return { check: 'credentials', verdict: 'ok', detail: `bootstrap token ${token.slice(0, 6)}.<secret> from ${source}${discovered}` };
  }
  Object.assign(ctx, { cluster: boot.config, via: 'token', credentials: boot.credentials });
  return { check: 'credentials', verdict: 'ok', detail: `the bootstrap kubeconfig's client certificate, from ${source}` };
}

async function server(ctx: Ctx): Promise<Check> {
  const cluster = ctx.cluster!;
  const anon = clientFor(cluster, { kind: 'anonymous' }, { userAgent: USER_AGENT });
  try {
    const v = await anon.request<{ gitVersion?: string }>('GET', '/version');
    return { check: 'server', verdict: 'ok', detail: `${cluster.server} reachable, TLS verified, Kubernetes ${v.gitVersion ?? '?'}` };
  } catch (err) {
    const msg = errorMessage(err);
    if (isUntrustedServer(err)) {
      return explainUntrusted(cluster, ctx.credentials?.kind === 'token' ? ctx.credentials.token : undefined);
    }
    const fix = /altnames|does not match/i.test(msg)
      ? `the server's certificate does not name ${new URL(cluster.server).hostname}: use a name it has in the server URL, or set tls-server-name in ${cluster.file}`
      : /not yet valid|has expired|expired/i.test(msg)
        ? 'the certificate dates do not fit this machine\'s clock: check the time (timedatectl, chrony)'
        : /self[- ]signed|unable to (get|verify)|certificate/i.test(msg)
          ? `the CA in ${cluster.file} did not sign the server's certificate: put the cluster CA (e.g. /etc/kubernetes/pki/ca.crt) in certificate-authority(-data)`
          : `check the server URL in ${cluster.file}, the network and firewalls`;
    return { check: 'server', verdict: 'fail', detail: msg, fix };
  } finally {
    await anon.close();
  }
}

async function authentication(ctx: Ctx): Promise<Check> {
  ctx.api = clientFor(ctx.cluster!, ctx.credentials!, { userAgent: USER_AGENT });
  try {
    ctx.user = await ctx.api.whoami();
    return { check: 'authentication', verdict: 'ok', detail: `the API server sees ${ctx.user.username} in ${ctx.user.groups.join(', ')}` };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      return ctx.via === 'token'
        ? { check: 'authentication', verdict: 'fail', detail: 'the bootstrap token was rejected (401): it expired, was deleted, or never existed', fix: 'create a new one (tlsboot token create --kubeconfig ADMIN) and put it in the bootstrap kubeconfig or token file' }
        : { check: 'authentication', verdict: 'fail', detail: 'the client certificate was rejected (401): the cluster CA changed or the API server does not trust it', fix: `remove ${ctx.cfg.kubeconfig} so that tlsboot bootstraps again with the token` };
    }
    return { check: 'authentication', verdict: 'fail', detail: errorMessage(err) };
  }
}

async function allowed(ctx: Ctx, subresource?: string): Promise<boolean> {
  return ctx.api!.canI({ group: 'certificates.k8s.io', resource: 'certificatesigningrequests', verb: 'create', ...(subresource ? { subresource } : {}) });
}

async function csrPermission(ctx: Ctx): Promise<Check> {
  if (await allowed(ctx)) return { check: 'csr permission', verdict: 'ok', detail: `${ctx.user!.username} may create CSRs` };
  const group = ctx.user!.groups.find((g) => g.startsWith('system:bootstrappers:')) ?? 'system:bootstrappers';
  return { check: 'csr permission', verdict: 'fail', detail: `${ctx.user!.username} may not create CertificateSigningRequests`, fix: `bind system:node-bootstrapper to its group: tlsboot cluster rbac --kubeconfig ADMIN --group ${group}` };
}

async function autoApproval(ctx: Ctx): Promise<Check> {
  const { identity } = ctx.cfg;
  if (identity.signerName !== KUBELET_CLIENT_SIGNER) {
    return { check: 'auto-approval', verdict: 'warn', detail: `kube-controller-manager never auto-approves ${identity.signerName}: CSRs wait for a human or an approver`, fix: 'run tlsboot approve with a policy for this signer (examples/approver), or kubectl certificate approve <name> as tlsboot prints while it waits' };
  }
  const sub = ctx.via === 'certificate' && ctx.user!.username === identity.subject.commonName ? 'selfnodeclient' : 'nodeclient';
  if (await allowed(ctx, sub)) return { check: 'auto-approval', verdict: 'ok', detail: `the controller-manager will approve (${sub})` };
  const group = ctx.user!.groups.find((g) => g.startsWith('system:bootstrappers:'));
  return {
    check: 'auto-approval', verdict: 'warn',
    detail: `${ctx.user!.username} may not create certificatesigningrequests/${sub}: its CSRs stay Pending until approved by hand`,
    fix: sub === 'nodeclient'
      ? `give the token kubeadm's group (tlsboot token create --groups system:bootstrappers:kubeadm:default-node-token) or bind nodeclient${group ? ` to ${group}` : ''} (tlsboot cluster rbac)`
      : 'bind selfnodeclient to system:nodes: tlsboot cluster rbac --kubeconfig ADMIN',
  };
}

/** ValidateKubeletClientCSR (pkg/apis/certificates/helpers.go), for the kubelet-client signer. */
async function csrShape(ctx: Ctx): Promise<Check> {
  const id = ctx.cfg.identity;
  if (id.signerName !== KUBELET_CLIENT_SIGNER) return { check: 'csr shape', verdict: 'ok', detail: `no fixed shape for ${id.signerName}` };
  const usages = usagesFor(id, id.keyAlgorithm.startsWith('rsa'), 'bootstrap');
  const problems: string[] = [];
  if (id.subject.organizations.length !== 1 || id.subject.organizations[0] !== 'system:nodes') problems.push('O must be exactly system:nodes');
  if (!id.subject.commonName.startsWith('system:node:')) problems.push('CN must start with system:node:');
  if (id.dnsNames.length + id.ipAddresses.length > 0) problems.push('client certificates may not have SANs');
  const set = [...new Set(usages)].sort().join(',');
  if (!['client auth,digital signature', 'client auth,digital signature,key encipherment'].includes(set)) problems.push('usages must be digital signature and client auth (and key encipherment)');
  if (ctx.via === 'certificate' && ctx.user && ctx.user.username !== id.subject.commonName) {
    problems.push(`NodeRestriction lets ${ctx.user.username} ask only for CN=${ctx.user.username}`);
  }
  return problems.length === 0
    ? { check: 'csr shape', verdict: 'ok', detail: `O=system:nodes, CN=${id.subject.commonName}, usages ${usages.join(', ')}: the approver and signer accept it` }
    : { check: 'csr shape', verdict: 'fail', detail: `the controller-manager would not approve or sign this request: ${problems.join('; ')}`, fix: 'drop the subject, SAN and usage overrides, or use another signer' };
}

async function ourCsrs(ctx: Ctx): Promise<Check[]> {
  let items: CsrObject[];
  try {
    items = (await ctx.api!.request<{ items?: CsrObject[] }>('GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).items ?? [];
  } catch (err) {
    return [{ check: 'our CSRs', verdict: 'warn', detail: `cannot list CSRs: ${errorMessage(err)}` }];
  }
  const mine = items.filter((c) => c.spec.username === ctx.user!.username);
  const out: Check[] = [];
  for (const c of mine) {
    const conds = c.status?.conditions ?? [];
    const age = `${Math.round((ctx.now.getTime() - Date.parse(c.metadata.creationTimestamp ?? '')) / 60_000)} min old`;
    const bad = conds.find((x) => x.type === 'Denied' || x.type === 'Failed');
    if (bad) out.push({ check: 'our CSRs', verdict: 'warn', detail: `${c.metadata.name} ${bad.type} (${bad.reason ?? ''}: ${bad.message ?? ''}), ${age}` });
    else if (!conds.some((x) => x.type === 'Approved')) out.push({ check: 'our CSRs', verdict: 'warn', detail: `${c.metadata.name} Pending, ${age}`, fix: approveHint(c.metadata.name ?? '') });
  }
  return out.length > 0 ? out : [{ check: 'our CSRs', verdict: 'ok', detail: `${mine.length} CSR(s) of ${ctx.user!.username}, none pending, denied or failed` }];
}

async function certificate(ctx: Ctx): Promise<Check> {
  const { now } = ctx;
  const store = new CertStore(ctx.cfg.certDir, ctx.cfg.identity.filePrefix);
  let current;
  try {
    current = await store.current();
  } catch (err) {
    return { check: 'certificate', verdict: 'fail', detail: errorMessage(err), fix: `remove ${store.currentPath} to bootstrap again` };
  }
  if (!current) return { check: 'certificate', verdict: 'warn', detail: `none yet at ${store.currentPath}`, fix: 'tlsboot run will bootstrap one' };
  const leaf = current.chain[0]!;
  const cert = new X509Certificate(current.chainPem);
  const problems: string[] = [];
  if (leaf.notAfter.getTime() <= now.getTime()) problems.push(`expired at ${leaf.notAfter.toISOString()}`);
  if (!cert.checkPrivateKey(current.key.privateKey)) problems.push('the key does not match the certificate');
  const cas = caList(ctx.cluster?.caPem);
  if (cas.length > 0 && !issuedByOneOf(current.chainPem, cas)) problems.push('not signed by a cluster CA in the kubeconfig');
  const w = rotationWindow(leaf.notBefore, leaf.notAfter);
  const window = `${w.from.toISOString()} .. ${w.to.toISOString()}`;
  return problems.length === 0
    ? { check: 'certificate', verdict: 'ok', detail: `${store.currentPath}: valid until ${leaf.notAfter.toISOString()}, key matches, chains to the CA; rotation due ${window}` }
    : { check: 'certificate', verdict: 'fail', detail: `${store.currentPath}: ${problems.join('; ')}`, fix: `remove ${store.currentPath} and restart tlsboot to bootstrap again` };
}

/** The cluster's CAs as cluster-info lists them, against the node's (a client identity's written kubeconfig). */
async function trust(ctx: Ctx): Promise<Check[]> {
  if (ctx.via !== 'certificate' || ctx.cfg.serving || !ctx.cluster) return [];
  const leaf = (await new CertStore(ctx.cfg.certDir, ctx.cfg.identity.filePrefix).current().catch(() => undefined))?.chainPem;
  return [await clusterTrust(ctx.cluster, leaf)];
}

/** removeBootstrapCredential: say that rotation depends on the certificate alone, and the way back. */
async function bootstrapCredential(ctx: Ctx): Promise<Check[]> {
  if (!ctx.cfg.removeBootstrapCredential || ctx.via !== 'certificate') return [];
  const token = await readBootstrap(ctx.cfg).then((b) => b.config.token, () => undefined);
  return token
    ? [{ check: 'bootstrap credential', verdict: 'ok', detail: 'the bootstrap token is still there; tlsboot run removes it once the certificate is verified against the server' }]
    : [{ check: 'bootstrap credential', verdict: 'ok', detail: NO_BOOTSTRAP_CREDENTIAL }];
}

export function formatChecks(checks: Check[]): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
  return checks.map((c) => `${mark[c.verdict]} ${c.check}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`).join('\n') + '\n';
}
