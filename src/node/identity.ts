// What to ask for: subject, SANs, signer, usages, key algorithm and file prefix. The default is
// exactly kubelet's client identity; everything else is an override.
import { isIP } from 'node:net';
import os from 'node:os';
import { ConfigError } from '../base/errors.js';
import type { CsrTemplate } from '../pki/csr.js';
import type { KeyAlgorithm } from '../pki/keys.js';
import { isNodeName, isSignerName, KNOWN_USAGES, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER } from '../kube/vocabulary.js';

export interface Identity extends CsrTemplate {
  signerName: string;
  /** Explicit usages; when absent they follow kubelet's rule for the signer and key. */
  usages?: string[];
  keyAlgorithm: KeyAlgorithm;
  /** Requested lifetime; omitted by default, like kubelet. */
  expirationSeconds?: number;
  filePrefix: string;
}

/** How long --once retries failures by default before it exits 1. */
export const DEFAULT_RETRY_TIMEOUT_MS = 5 * 60_000;
/** Timestamped certificate files kept (kubelet keeps every one). */
export const DEFAULT_KEEP = 5;
/** How long one CSR may wait for approval and issuance before a new attempt. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 15 * 60_000;

/** What one identity is and where it lives: the part of the config that the agent reads. */
export interface IdentitySettings {
  kubeconfig: string;
  bootstrapKubeconfig?: string;
  /** Replaces the bootstrap kubeconfig's token (a systemd credential, say); read each attempt. */
  bootstrapTokenFile?: string;
  certDir: string;
  identity: Identity;
  /** Default DEFAULT_APPROVAL_TIMEOUT_MS. */
  approvalTimeoutMs?: number;
  allowInsecureBootstrap?: boolean;
  /** Timestamped files to keep (default DEFAULT_KEEP). */
  keep?: number;
  /** Pin the rotation point to this fraction of the lifetime instead of kubelet's 0.7-0.9. */
  rotationFraction?: number;
  /**
   * A serving certificate: it cannot authenticate to the API server, so every request is made
   * with `kubeconfig`, the node's client kubeconfig, which is read and never written; the
   * certificate is kubelet's `<prefix>-current.pem` and nothing else.
   */
  serving?: boolean;
  /** kubeadm-style pins (sha256:<hex>) for the CA a bootstrap kubeconfig without one discovers. */
  caCertHashes?: string[];
  /** How often the cluster's CAs are read from cluster-info (jittered); 0: never. */
  caRefreshIntervalMs?: number;
  /** After a signer change, the re-issue is spread over this long. */
  reissueJitterMs?: number;
  /** Remove the bootstrap token once the first certificate works. */
  removeBootstrapCredential?: boolean;
}

export interface IdentityOverrides {
  signerName?: string;
  commonName?: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usages?: string[];
  keyAlgorithm?: KeyAlgorithm;
  expirationSeconds?: number;
  filePrefix?: string;
}

/** What the serving preset sets itself; a flag for any of them alongside it is a mistake. */
const SERVING_SETS: Array<[keyof IdentityOverrides, string]> = [['signerName', 'signer-name'], ['commonName', 'common-name'], ['organizations', 'organization'], ['usages', 'usage']];

/**
 * kubelet's serving certificate (serverTLSBootstrap): signer kubelet-serving, CN
 * system:node:<node>, O system:nodes, kubelet's server usages, and SANs: the ones given, or the
 * node and host names and the host's addresses, as kubelet reports them in the Node's status.
 */
export function servingOverrides(nodeName: string, o: IdentityOverrides, host = { name: os.hostname(), interfaces: os.networkInterfaces() }): IdentityOverrides {
  for (const [key, flag] of SERVING_SETS) {
    if (o[key] !== undefined) throw new ConfigError(`--${flag} cannot be combined with --serving, which sets it (kubelet's serving identity)`);
  }
  const given = (o.dnsNames?.length ?? 0) + (o.ipAddresses?.length ?? 0) > 0;
  return {
    ...o,
    signerName: KUBELET_SERVING_SIGNER,
    dnsNames: given ? o.dnsNames ?? [] : [...new Set([nodeName, host.name.toLowerCase()])],
    ipAddresses: given ? o.ipAddresses ?? [] : hostAddresses(host.interfaces),
  };
}

/** The host's own addresses: not loopback, and not IPv6 link-local (which needs a zone to be used). */
export function hostAddresses(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string[] {
  const all = Object.values(interfaces).flatMap((list) => list ?? []);
  return [...new Set(all.filter((i) => !i.internal && !/^fe[89ab]/i.test(i.address)).map((i) => i.address))];
}

export function buildIdentity(nodeName: string, o: IdentityOverrides = {}): Identity {
  if (!isNodeName(nodeName) && !o.commonName) {
    throw new ConfigError(`--node-name ${JSON.stringify(nodeName)} is not a valid node name (lower-case letters, digits, '-' and '.')`);
  }
  const serving = o.signerName === KUBELET_SERVING_SIGNER;
  const identity: Identity = {
    subject: {
      commonName: o.commonName ?? `system:node:${nodeName}`,
      organizations: o.organizations ?? ['system:nodes'],
    },
    dnsNames: o.dnsNames ?? [],
    ipAddresses: o.ipAddresses ?? [],
    signerName: o.signerName ?? KUBELET_CLIENT_SIGNER,
    keyAlgorithm: o.keyAlgorithm ?? 'ecdsa-p256',
    filePrefix: o.filePrefix ?? (serving ? 'kubelet-server' : 'kubelet-client'),
  };
  if (o.usages && o.usages.length > 0) identity.usages = o.usages;
  if (o.expirationSeconds !== undefined) identity.expirationSeconds = o.expirationSeconds;
  validateIdentity(identity);
  return identity;
}

/** expirationSeconds is an int32 in the API. */
const MAX_INT32 = 2 ** 31 - 1;
const DNS_LABEL = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^(\\*\\.)?${DNS_LABEL}(\\.${DNS_LABEL})*$`);

/** Everything the API or the request builder would refuse later, refused before any key is made. */
function validateIdentity(id: Identity): void {
  if (!isSignerName(id.signerName)) {
    throw new ConfigError(`--signer-name ${JSON.stringify(id.signerName)} must look like domain/path, e.g. ${KUBELET_CLIENT_SIGNER}`);
  }
  if (id.signerName === 'kubernetes.io/legacy-unknown') {
    throw new ConfigError('--signer-name kubernetes.io/legacy-unknown cannot be used with certificates.k8s.io/v1');
  }
  for (const u of id.usages ?? []) {
    if (!(KNOWN_USAGES as readonly string[]).includes(u)) {
      throw new ConfigError(`--usage ${JSON.stringify(u)} is not a known usage; one of: ${KNOWN_USAGES.join(', ')}`);
    }
  }
  if (id.usages && new Set(id.usages).size !== id.usages.length) throw new ConfigError('--usage lists a usage twice');
  if (id.expirationSeconds !== undefined && (!Number.isInteger(id.expirationSeconds) || id.expirationSeconds < 600 || id.expirationSeconds > MAX_INT32)) {
    throw new ConfigError(`--expiration-seconds must be a whole number of at least 600 and at most ${MAX_INT32} (the API's limits)`);
  }
  for (const ip of id.ipAddresses) {
    if (isIP(ip) === 0) throw new ConfigError(`--ip-address ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  }
  for (const name of id.dnsNames) {
    if (name.length > 253 || !DNS_NAME.test(name)) throw new ConfigError(`--dns-name ${JSON.stringify(name)} is not a DNS name (letters, digits, '-' and '.', optionally starting with "*.")`);
  }
  if (id.subject.organizations.some((o) => typeof o !== 'string' || o === '')) throw new ConfigError('--organization must not be empty');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id.filePrefix)) {
    throw new ConfigError(`--file-prefix ${JSON.stringify(id.filePrefix)} may hold only letters, digits, '.', '_' and '-'`);
  }
  if (!id.subject.commonName) throw new ConfigError('--common-name must not be empty');
}

/**
 * kubelet's usages. The foreground bootstrap appends "key encipherment" last for RSA keys
 * (bootstrap.requestNodeCertificate); the rotation manager puts it second
 * (DefaultKubeletClientGetUsages). We copy each in its own path so the CSRs, and the
 * bootstrap CSR name digested from them, match kubelet's.
 */
export function usagesFor(id: Identity, keyIsRsa: boolean, path: 'bootstrap' | 'rotation'): string[] {
  if (id.usages) return [...id.usages];
  const auth = id.signerName === KUBELET_SERVING_SIGNER ? 'server auth' : 'client auth';
  if (!keyIsRsa) return ['digital signature', auth];
  return path === 'bootstrap'
    ? ['digital signature', auth, 'key encipherment']
    : ['digital signature', 'key encipherment', auth];
}
