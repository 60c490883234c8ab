// Doctor's view of the cluster's CAs: why the server's certificate does not verify (its chain,
// the CA that would verify it, and whether cluster-info offers that CA), and whether what the
// node trusts matches what cluster-info lists.
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { errorMessage } from '../base/errors.js';
import { USER_AGENT } from '../base/version.js';
import { ApiClient } from '../kube/api.js';
import { fetchClusterInfo, verifyClusterInfo, type ClusterInfo } from '../kube/clusterinfo.js';
import type { ClientConfig } from '../kube/kubeconfig.js';
import { caList } from '../pki/certs.js';
import { spkiPin } from '../pki/pin.js';
import { issuedByOneOf, listedCas, serverVerifies } from '../node/trust.js';

export interface TrustCheck {
  check: string;
  verdict: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

/** The server's chain as it presents it (nothing verified), subject <- issuer for each. */
function serverChain(cluster: Pick<ClientConfig, 'server' | 'tlsServerName'>): Promise<X509Certificate[]> {
  const url = new URL(cluster.server);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const sni = cluster.tlsServerName ?? (isIP(host) ? undefined : host);
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port: Number(url.port || 443), rejectUnauthorized: false, ...(sni ? { servername: sni } : {}) });
    socket.setTimeout(10_000, () => {
      socket.destroy();
      resolve([]);
    });
    socket.once('error', () => resolve([]));
    socket.once('secureConnect', () => {
      const chain: X509Certificate[] = [];
      let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (c?.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        chain.push(new X509Certificate(c.raw));
        c = c.issuerCertificate;
      }
      socket.destroy();
      resolve(chain);
    });
  });
}

/** cluster-info read without verifying the server; verified with the token when there is one. */
async function unverifiedClusterInfo(cluster: ClientConfig, token: string | undefined): Promise<{ info?: ClusterInfo; how: string }> {
  const api = new ApiClient({ server: cluster.server, insecureSkipTlsVerify: true, credentials: { kind: 'anonymous' }, userAgent: USER_AGENT, ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}) });
  try {
    const info = await fetchClusterInfo(api);
    if (!token) return { info, how: 'not verified: no bootstrap token to check its signature with' };
    verifyClusterInfo(info, token, cluster.server);
    return { info, how: 'its signature verified with the bootstrap token' };
  } catch (err) {
    return { how: errorMessage(err) };
  } finally {
    await api.close();
  }
}

/** Why the server's certificate does not verify against what `cluster` trusts, and the way out. */
export async function explainUntrusted(cluster: ClientConfig, token: string | undefined): Promise<TrustCheck> {
  const chain = await serverChain(cluster);
  const trusted = caList(cluster.caPem);
  const shown = chain.map((c) => `${c.subject.replace(/\n/g, ', ')} <- ${c.issuer.replace(/\n/g, ', ')}`).join(' | ') || 'none (no TLS handshake)';
  const top = chain.at(-1);
  const { info, how } = await unverifiedClusterInfo(cluster, token);
  const offering = info?.caPems.find((ca) => top && (issuedByOneOf(top.toString(), [ca]) || new X509Certificate(ca).fingerprint256 === top.fingerprint256));
  const detail = `the server's certificate does not verify against the ${trusted.length} CA(s) in ${cluster.file} (${trusted.map(spkiPin).join(', ') || 'none'}). ` +
    `It presents: ${shown}; the CA that would verify it is "${top?.issuer.replace(/\n/g, ', ') ?? '?'}". ` +
    (offering ? `cluster-info offers that CA (${spkiPin(offering)}; ${how}).` : `cluster-info does not offer it (${info ? `it lists ${info.caPems.map(spkiPin).join(', ')}` : how}).`);
  const fix = offering
    ? (token
      ? 'tlsboot run refreshes the CAs from cluster-info with the bootstrap token by itself; or add that CA to certificate-authority(-data) by hand'
      : `add that CA to certificate-authority(-data) in ${cluster.file} (check its pin with the cluster's admin), or give a bootstrap token so that tlsboot refreshes the CAs from cluster-info`)
    : 'the cluster\'s admin publishes the CA bundle: tlsboot cluster info --kubeconfig ADMIN --ca BUNDLE; check the server URL too';
  return { check: 'server', verdict: 'fail', detail, fix };
}

/** What the node trusts against what cluster-info lists, and whether its certificate's CA is still listed. */
export async function clusterTrust(cluster: ClientConfig, leafPem: string | undefined): Promise<TrustCheck> {
  let listed: string[];
  try {
    listed = await listedCas(cluster);
  } catch (err) {
    return { check: 'cluster CAs', verdict: 'warn', detail: `cannot read cluster-info: ${errorMessage(err)}`, fix: 'without cluster-info tlsboot cannot follow a CA rotation: tlsboot cluster rbac --kubeconfig ADMIN publishes it' };
  }
  const trusted = caList(cluster.caPem);
  const pins = (l: string[]): string => l.map(spkiPin).join(', ') || 'none';
  const missing = listed.filter((c) => !trusted.some((t) => spkiPin(t) === spkiPin(c)));
  const unlisted = trusted.filter((t) => !listed.some((c) => spkiPin(t) === spkiPin(c)));
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`cluster-info lists CA(s) the node does not trust yet: ${pins(missing)} (tlsboot run adds them at its next refresh)`);
  if (unlisted.length > 0) problems.push(`the node still trusts CA(s) cluster-info no longer lists: ${pins(unlisted)} (dropped once the server no longer needs them: ${(await serverVerifies(cluster, listed)) ? 'it does not' : 'it still does'})`);
  if (leafPem && !issuedByOneOf(leafPem, listed)) problems.push('the current certificate was issued by a CA the cluster no longer lists: tlsboot run re-issues it (within reissueJitter)');
  return problems.length === 0
    ? { check: 'cluster CAs', verdict: 'ok', detail: `the node trusts what cluster-info lists (${pins(listed)})` }
    : { check: 'cluster CAs', verdict: 'warn', detail: problems.join('; '), fix: 'keep tlsboot run running: it follows cluster-info (caRefreshInterval)' };
}
