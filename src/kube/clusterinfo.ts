// kube-public/cluster-info, the ConfigMap kubeadm join discovers a cluster from: a kubeconfig
// with the server and the CA bundle, readable by anyone, and signed per bootstrap token by
// kube-controller-manager's bootstrapsigner (a detached JWS, HS256 keyed with the token's
// secret, in `jws-kubeconfig-<token id>`; cmd/kubeadm/app/discovery/token). A node that has only
// the server URL and a token can fetch it over TLS it cannot verify yet, and trust what the
// signature proves came from someone who knows the token.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { stringify as stringifyYaml } from 'yaml';
import { ApiError, ExitCode, TlsbootError } from '../base/errors.js';
import { isDict, parseYamlText } from '../base/yamlfields.js';
import { caList } from '../pki/certs.js';
import type { ApiClient } from './api.js';

export const CLUSTER_INFO_NAMESPACE = 'kube-public';
export const CLUSTER_INFO_NAME = 'cluster-info';
export const CLUSTER_INFO_PATH = `/api/v1/namespaces/${CLUSTER_INFO_NAMESPACE}/configmaps/${CLUSTER_INFO_NAME}`;
const JWS_PREFIX = 'jws-kubeconfig-';

/** What cluster-info publishes. */
export interface ClusterInfo {
  /** The kubeconfig text exactly as published: the signatures cover these bytes. */
  kubeconfig: string;
  server: string;
  /** Each CA certificate of the bundle, PEM, in the published order. */
  caPems: string[];
  /** Token id -> detached JWS. */
  signatures: Record<string, string>;
}

/**
 * cluster-info cannot be trusted or read: forged, no CA matching the pins, absent or malformed.
 * Exit 2: a human has to look (the agent retries it as a daemon, not under --once).
 */
export class ClusterInfoError extends TlsbootError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** The cluster publishes no cluster-info anyone may read: nothing to follow (doctor warns). */
export class ClusterInfoAbsentError extends ClusterInfoError {}

/** GET cluster-info and check its shape (anonymously: kubeadm's RBAC lets system:anonymous read it). */
export async function fetchClusterInfo(api: ApiClient, signal?: AbortSignal): Promise<ClusterInfo> {
  let cm: unknown;
  try {
    cm = await api.request<unknown>('GET', CLUSTER_INFO_PATH, undefined, signal);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 403 || err.status === 401)) {
      throw new ClusterInfoAbsentError(
        `${api.server} publishes no readable ${CLUSTER_INFO_NAMESPACE}/${CLUSTER_INFO_NAME} (${err.status}): run tlsboot cluster init or tlsboot cluster rbac with an admin kubeconfig to publish it`,
      );
    }
    throw err;
  }
  return parseClusterInfo(cm, `${api.server} ${CLUSTER_INFO_NAMESPACE}/${CLUSTER_INFO_NAME}`);
}

/** A ConfigMap as the API returns it -> ClusterInfo; a ClusterInfoError naming the field otherwise. */
export function parseClusterInfo(cm: unknown, where: string): ClusterInfo {
  const bad = (what: string): never => {
    throw new ClusterInfoError(`${where}: ${what}`);
  };
  const data = isDict(cm) && isDict(cm['data']) ? cm['data'] : bad('has no data');
  const kubeconfig = typeof data['kubeconfig'] === 'string' ? data['kubeconfig'] : bad('data.kubeconfig is missing');
  let doc: unknown;
  try {
    doc = parseYamlText(kubeconfig, `${where} data.kubeconfig`);
  } catch {
    return bad('data.kubeconfig is not YAML');
  }
  const clusters = isDict(doc) && Array.isArray(doc['clusters']) ? doc['clusters'] : [];
  const first: unknown = clusters[0];
  const cluster = isDict(first) && isDict(first['cluster']) ? first['cluster'] : bad('data.kubeconfig has no clusters[0].cluster');
  const server = typeof cluster['server'] === 'string' && cluster['server'] !== '' ? cluster['server'] : bad('data.kubeconfig has no server');
  const caData = typeof cluster['certificate-authority-data'] === 'string' ? cluster['certificate-authority-data'] : bad('data.kubeconfig has no certificate-authority-data');
  const caPems = caList(Buffer.from(caData, 'base64').toString('utf8'));
  if (caPems.length === 0) bad('certificate-authority-data holds no PEM certificate');
  const signatures: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (k.startsWith(JWS_PREFIX) && typeof v === 'string') signatures[k.slice(JWS_PREFIX.length)] = v;
  }
  return { kubeconfig, server: server.replace(/\/+$/, ''), caPems, signatures };
}

/**
 * Check the bootstrapsigner's signature of cluster-info for this token. A missing signature is
 * a plain TlsbootError (the controller-manager signs a new token within seconds: retry); a
 * signature that does not verify is a ClusterInfoError (forged or tampered with: never trusted).
 */
export function verifyClusterInfo(info: ClusterInfo, token: string, where: string): void {
  const [id, secret] = token.split('.') as [string, string];
  const jws = info.signatures[id];
  if (jws === undefined) {
    throw new TlsbootError(`${where}: cluster-info has no signature for token ${id} yet (kube-controller-manager's bootstrapsigner signs it for tokens with usage-bootstrap-signing); retrying`);
  }
  const parts = jws.split('.');
  const header = parts[0] ?? '';
  let alg: unknown;
  let kid: unknown;
  try {
    ({ alg, kid } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown });
  } catch {
    // judged below, as a signature that does not verify
  }
  const want = Buffer.from(signature(header, info.kubeconfig, secret), 'utf8');
  const got = Buffer.from(parts[2] ?? '', 'utf8');
  const ok = parts.length === 3 && parts[1] === '' && alg === 'HS256' && kid === id && got.length === want.length && timingSafeEqual(got, want);
  if (!ok) {
    throw new ClusterInfoError(`${where}: the cluster-info signature for token ${id} does not verify: cluster-info was altered, or this is not the cluster the token belongs to; nothing was trusted`);
  }
}

/** A detached JWS over `content` as the bootstrapsigner makes it (for publishing and tests). */
export function detachedJws(content: string, tokenId: string, secret: string): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: tokenId })).toString('base64url');
  return `${header}..${signature(header, content, secret)}`;
}

function signature(header: string, content: string, secret: string): string {
  return createHmac('sha256', secret).update(`${header}.${Buffer.from(content, 'utf8').toString('base64url')}`).digest('base64url');
}

/** The kubeconfig that cluster-info holds: kubeadm's shape (one unnamed cluster, no user). */
export function renderClusterInfoKubeconfig(server: string, caPems: string[]): string {
  return stringifyYaml({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: '', cluster: { 'certificate-authority-data': Buffer.from(caPems.join('')).toString('base64'), server } }],
    contexts: null, 'current-context': '', preferences: {}, users: null,
  }, { lineWidth: 0 });
}
