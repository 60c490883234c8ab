// The cluster side of TLS bootstrap, as kubeadm does it: bootstrap tokens (Secrets in
// kube-system), the RBAC that lets their group create CSRs and have them auto-approved, and
// the bootstrap kubeconfig a node needs. Applied idempotently with an admin kubeconfig.
import { randomInt } from 'node:crypto';
import { clientFor, type ApiClient } from '../kube/api.js';
import { withDecision } from '../kube/csrtypes.js';
import { buildCsrPem } from '../pki/csr.js';
import { waitForCertificate } from '../kube/csrwait.js';
import { ApiError, ConfigError } from '../base/errors.js';
import { APISERVER_CLIENT_SIGNER } from '../kube/vocabulary.js';
import { generateKey, privateKeyPem } from '../pki/keys.js';
import { readKubeconfig } from '../kube/kubeconfig.js';
import { CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE, CLUSTER_INFO_PATH, renderClusterInfoKubeconfig } from '../kube/clusterinfo.js';
import { silentLogger } from '../base/log.js';
import { USER_AGENT } from '../base/version.js';

const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const SECRETS = '/api/v1/namespaces/kube-system/secrets';
const RBAC = '/apis/rbac.authorization.k8s.io/v1';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface Token {
  id: string;
  secret: string;
  value: string;
}

/** `[a-z0-9]{6}.[a-z0-9]{16}` from the CSPRNG (crypto.randomInt is uniform, no modulo bias). */
export function generateToken(): Token {
  const pick = (n: number): string => Array.from({ length: n }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('');
  const id = pick(6);
  const secret = pick(16);
  return { id, secret, value: `${id}.${secret}` };
}

export function checkGroups(groups: string[]): void {
  for (const g of groups) {
    if (!/^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/.test(g)) {
      throw new ConfigError(`--groups ${JSON.stringify(g)}: extra groups must match system:bootstrappers:[a-z0-9:-]*[a-z0-9] (the token authenticator rejects others)`);
    }
  }
}

/** The Secret kubeadm writes for a token (cluster-bootstrap's token/api). */
export function tokenSecret(token: Token, opts: { ttlMs?: number; groups: string[]; description?: string; now?: Date }): K8sObject {
  const data: Record<string, string> = {
    'token-id': token.id,
    'token-secret': token.secret,
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': 'true',
  };
  if (opts.groups.length > 0) data['auth-extra-groups'] = opts.groups.join(',');
  if (opts.description) data['description'] = opts.description;
  if (opts.ttlMs) data['expiration'] = new Date((opts.now ?? new Date()).getTime() + opts.ttlMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'bootstrap.kubernetes.io/token',
    metadata: { name: `bootstrap-token-${token.id}`, namespace: 'kube-system' },
    stringData: data,
  };
}

/**
 * kubeadm's three TLS-bootstrap bindings for `group`, plus the role that lets the API server
 * reach kubelets (logs, exec, metrics) bound to its kubelet-client identity.
 */
export function rbacObjects(group: string, apiserverKubeletUser: string): K8sObject[] {
  const binding = (name: string, role: string, kind: 'Group' | 'User', subject: string): K8sObject => ({
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind, name: subject }],
  });
  return [
    binding('kubeadm:kubelet-bootstrap', 'system:node-bootstrapper', 'Group', group),
    binding('kubeadm:node-autoapprove-bootstrap', 'system:certificates.k8s.io:certificatesigningrequests:nodeclient', 'Group', group),
    binding('kubeadm:node-autoapprove-certificate-rotation', 'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', 'Group', 'system:nodes'),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'system:kube-apiserver-to-kubelet' },
      rules: [{ apiGroups: [''], resources: ['nodes/proxy', 'nodes/stats', 'nodes/log', 'nodes/spec', 'nodes/metrics'], verbs: ['*'] }],
    },
    binding('system:kube-apiserver-to-kubelet', 'system:kube-apiserver-to-kubelet', 'User', apiserverKubeletUser),
  ];
}

/**
 * What `kubeadm join` discovers a cluster from: kube-public/cluster-info with the server and the
 * CA bundle (the bootstrapsigner signs it per token), and kubeadm's Role and RoleBinding that let
 * system:anonymous read exactly that ConfigMap (kubeadm:bootstrap-signer-clusterinfo).
 */
export function clusterInfoObjects(target: { server: string; caPems: string[] } | undefined): K8sObject[] {
  const name = 'kubeadm:bootstrap-signer-clusterinfo';
  const meta = { name, namespace: CLUSTER_INFO_NAMESPACE };
  const rbac: K8sObject[] = [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta, rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [CLUSTER_INFO_NAME], verbs: ['get'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:anonymous' }],
    },
  ];
  if (!target) return rbac;
  return [{
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CLUSTER_INFO_NAME, namespace: CLUSTER_INFO_NAMESPACE },
    data: { kubeconfig: renderClusterInfoKubeconfig(target.server, target.caPems) },
  }, ...rbac];
}

/**
 * Publish this server and CA bundle in cluster-info, replacing what it held (a CA rotation: add
 * the new CA, later drop the old). The signatures are the controller-manager's to renew.
 */
export async function publishClusterInfo(api: ApiClient, server: string, caPems: string[]): Promise<ApplyAction> {
  const [cm] = clusterInfoObjects({ server, caPems });
  let existing: K8sObject | undefined;
  try {
    existing = await api.request<K8sObject>('GET', CLUSTER_INFO_PATH);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  if (!existing) {
    await api.request('POST', pathOf(cm!, false), cm);
    return 'created';
  }
  const data = isRecord(existing['data']) ? existing['data'] : {};
  const kubeconfig = (cm!['data'] as Record<string, string>)['kubeconfig'];
  if (data['kubeconfig'] === kubeconfig) return 'unchanged';
  await api.request('PUT', CLUSTER_INFO_PATH, { ...existing, data: { ...data, kubeconfig } });
  return 'updated';
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export type ApplyAction = 'created' | 'updated' | 'unchanged';

const PLURAL: Record<string, string> = { ClusterRole: 'clusterroles', ClusterRoleBinding: 'clusterrolebindings', Role: 'roles', RoleBinding: 'rolebindings' };

function pathOf(obj: K8sObject, named = true): string {
  const ns = obj.metadata.namespace;
  const base = obj.kind === 'Secret' ? SECRETS
    : obj.kind === 'ConfigMap' ? `/api/v1/namespaces/${ns}/configmaps`
      : `${RBAC}${ns ? `/namespaces/${ns}` : ''}/${PLURAL[obj.kind] ?? ''}`;
  return named ? `${base}/${encodeURIComponent(obj.metadata.name)}` : base;
}

/**
 * What an object says, without server-side fields, to decide "unchanged" (key order aside). A
 * ConfigMap (cluster-info) is only ever created: once there, it is the operator's (and the
 * bootstrapsigner's, which adds its signatures).
 */
function essence(obj: Record<string, unknown>): string {
  if (obj['kind'] === 'ConfigMap') return 'created once';
  return canonical({ rules: obj['rules'], roleRef: obj['roleRef'], subjects: obj['subjects'] });
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Create, or update when different (a binding's roleRef is immutable: replace it). */
export async function applyObject(api: ApiClient, obj: K8sObject): Promise<ApplyAction> {
  let existing: K8sObject | undefined;
  try {
    existing = await api.request<K8sObject>('GET', pathOf(obj));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  if (!existing) {
    await api.request('POST', pathOf(obj, false), obj);
    return 'created';
  }
  if (essence(existing) === essence(obj)) return 'unchanged';
  if (obj.kind.endsWith('RoleBinding') && canonical(existing['roleRef']) !== canonical(obj['roleRef'])) {
    await api.request('DELETE', pathOf(obj));
    await api.request('POST', pathOf(obj, false), obj);
    return 'updated';
  }
  await api.request('PUT', pathOf(obj), { ...obj, metadata: { ...obj.metadata, resourceVersion: existing.metadata.resourceVersion } });
  return 'updated';
}

export async function createSecret(api: ApiClient, secret: K8sObject): Promise<void> {
  await api.request('POST', SECRETS, secret);
}

export interface TokenRow {
  id: string;
  expiration?: string;
  expired: boolean;
  groups: string[];
  usages: string[];
  description?: string;
}

export async function listTokens(api: ApiClient, now = new Date()): Promise<TokenRow[]> {
  const list = await api.request<{ items?: Array<{ data?: Record<string, string> }> }>(
    'GET', `${SECRETS}?fieldSelector=${encodeURIComponent('type=bootstrap.kubernetes.io/token')}`);
  return (list.items ?? []).map((item) => {
    const d = (k: string): string | undefined => (item.data?.[k] === undefined ? undefined : Buffer.from(item.data[k]!, 'base64').toString('utf8'));
    const expiration = d('expiration');
    const row: TokenRow = {
      id: d('token-id') ?? '?',
      expired: expiration !== undefined && !(Date.parse(expiration) > now.getTime()),
      groups: (d('auth-extra-groups') ?? '').split(',').filter(Boolean),
      usages: Object.keys(item.data ?? {}).filter((k) => k.startsWith('usage-bootstrap-') && d(k) === 'true').map((k) => k.slice('usage-bootstrap-'.length)),
    };
    if (expiration) row.expiration = expiration;
    const description = d('description');
    if (description) row.description = description;
    return row;
  }).sort((a, b) => a.id.localeCompare(b.id));
}

export async function deleteToken(api: ApiClient, id: string): Promise<void> {
  if (!/^[a-z0-9]{6}$/.test(id)) throw new ConfigError(`token id ${JSON.stringify(id)} must be 6 characters [a-z0-9] (the part before the dot)`);
  try {
    await api.request('DELETE', `${SECRETS}/bootstrap-token-${id}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw new ConfigError(`there is no bootstrap token with id ${id}`);
    throw err;
  }
}

/**
 * The policy approver's least privilege: read CSRs, write their approval, approve for exactly
 * the policy's signers. Plus permission to ask (system:node-bootstrapper) for the groups the
 * policy approves, since a CSR they cannot create is a CSR nobody can approve. `readNodes`: get
 * on nodes, which a policy with nodeAddresses needs and no other does.
 */
export function approverRbacObjects(signers: string[], user: string, requesterGroups: string[], readNodes = false): K8sObject[] {
  const group = 'certificates.k8s.io';
  const rbac = 'rbac.authorization.k8s.io';
  const objs: K8sObject[] = [
    {
      apiVersion: `${rbac}/v1`, kind: 'ClusterRole', metadata: { name: APPROVER_ROLE },
      rules: [
        { apiGroups: [group], resources: ['certificatesigningrequests'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [group], resources: ['certificatesigningrequests/approval'], verbs: ['update'] },
        { apiGroups: [group], resources: ['signers'], resourceNames: signers, verbs: ['approve'] },
        // Only for a policy with nodeAddresses: the requesting Node's status.addresses.
        ...(readNodes ? [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }] : []),
      ],
    },
    {
      apiVersion: `${rbac}/v1`, kind: 'ClusterRoleBinding', metadata: { name: APPROVER_ROLE },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: APPROVER_ROLE },
      subjects: [{ apiGroup: rbac, kind: 'User', name: user }],
    },
  ];
  if (requesterGroups.length > 0) {
    objs.push({
      apiVersion: `${rbac}/v1`, kind: 'ClusterRoleBinding', metadata: { name: `${APPROVER_ROLE}-requesters` },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'system:node-bootstrapper' },
      subjects: requesterGroups.map((name) => ({ apiGroup: rbac, kind: 'Group', name })),
    });
  }
  return objs;
}

export const APPROVER_ROLE = 'tlsboot:approver';

/**
 * A client certificate for `commonName` through the CSR API, approved by the caller (an admin)
 * and issued by the controller-manager's kube-apiserver-client signer.
 */
export async function issueClientCertificate(api: ApiClient, commonName: string, expirationSeconds: number, signal: AbortSignal): Promise<{ certPem: string; keyPem: string }> {
  const pair = await generateKey('ecdsa-p256');
  const request = await buildCsrPem(pair, { subject: { commonName, organizations: [] }, dnsNames: [], ipAddresses: [] });
  const created = await api.createCsr({
    apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest',
    metadata: { generateName: 'tlsboot-client-' },
    spec: { request: Buffer.from(request).toString('base64'), signerName: APISERVER_CLIENT_SIGNER, usages: ['digital signature', 'client auth'], expirationSeconds },
  }, signal);
  const approved = await api.updateApproval(withDecision(created, 'Approved', 'TlsbootClusterApprover', `issued by tlsboot cluster approver for ${commonName}`), signal);
  const certPem = await waitForCertificate(api, approved, { signal, timeoutMs: 120_000, log: silentLogger });
  return { certPem, keyPem: privateKeyPem(pair) };
}

/** An admin client from a kubeconfig (client certificate or token). */
export async function adminClient(file: string): Promise<{ api: ApiClient; server: string; caPem?: string; tlsServerName?: string }> {
  const config = await readKubeconfig(file);
  const credentials = config.clientCertificate
    ? { kind: 'certificate' as const, certPem: config.clientCertificate.certPem, keyPem: config.clientCertificate.keyPem }
    : config.token ? { kind: 'token' as const, token: config.token } : undefined;
  if (!credentials) throw new ConfigError(`${file}: the current user has no client certificate or token`);
  const out: { api: ApiClient; server: string; caPem?: string; tlsServerName?: string } = { api: clientFor(config, credentials, { userAgent: USER_AGENT }), server: config.server };
  if (config.caPem) out.caPem = config.caPem;
  if (config.tlsServerName) out.tlsServerName = config.tlsServerName;
  return out;
}

/** Explain a 403 from an admin command in terms of what the kubeconfig needs. */
export function adminError(err: unknown, file: string): unknown {
  if (err instanceof ApiError && err.status === 403) {
    return new ConfigError(`${file}: not allowed (${err.message}); use a cluster-admin kubeconfig (such as kubeadm's admin.conf)`);
  }
  return err;
}
