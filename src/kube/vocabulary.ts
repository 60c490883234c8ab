// The certificates.k8s.io vocabulary tlsboot speaks: the built-in signers, the usages the API
// accepts, kubeadm's bootstrap group and token shape, and the kubectl command a human approves a
// CSR with.
import { BOOTSTRAP_TOKEN_SHAPE } from '../base/log.js';

export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
/** Client certificates for anyone; kube-controller-manager signs them but never approves them. */
export const APISERVER_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client';
/** kubeadm's group for node bootstrap tokens; its bindings let it create and auto-approve node CSRs. */
export const DEFAULT_BOOTSTRAP_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

/** A Node name (a DNS subdomain, as the Node object's name must be). */
export function isNodeName(name: string): boolean {
  return /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) && name.length <= 253;
}

/** A signer name: a domain, a slash, a path (certificates.k8s.io validation). */
export function isSignerName(name: string): boolean {
  return /^[a-z0-9.-]+\/[A-Za-z0-9._\/-]+$/.test(name) && name.length <= 571;
}

/** Whether `token` has kubeadm's shape; the bootstrap-token authenticator ignores any other. */
export function isBootstrapToken(token: string): boolean {
  return new RegExp(`^${BOOTSTRAP_TOKEN_SHAPE}$`).test(token);
}

/** The usages the API accepts (pkg/apis/certificates/validation). */
export const KNOWN_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement',
  'data encipherment', 'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any',
  'server auth', 'client auth', 'code signing', 'email protection', 's/mime', 'ipsec end system',
  'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing', 'microsoft sgc', 'netscape sgc',
] as const;

/** The kubectl command that approves a pending CSR, for messages to a human approver. */
export function approveHint(csrName: string): string {
  return `kubectl certificate approve ${csrName}`;
}
