// `tlsboot credential`: the current certificate as a client-go exec credential
// (client.authentication.k8s.io/v1 ExecCredential), so that kubectl and any client-go program
// always use the certificate tlsboot keeps current, without a copy of it embedded somewhere that
// goes stale (kubernetes#99645) and without writing another key file.
import { TlsbootError } from '../base/errors.js';
import { splitPem } from '../pki/certs.js';
import { readCurrent } from './credentials.js';
import { rotationWindow } from './deadline.js';

/** How soon client-go asks again once the rotation window has opened. */
export const RECHECK_MS = 5 * 60_000;

/** The ExecCredential object client-go reads from the plugin's standard output. */
export interface ExecCredential {
  apiVersion: 'client.authentication.k8s.io/v1';
  kind: 'ExecCredential';
  status: { clientCertificateData: string; clientKeyData: string; expirationTimestamp: string };
}

/**
 * The credential in the kubeconfig tlsboot writes. It expires, for client-go, where the rotation
 * window opens (70 % of the lifetime): the earliest tlsboot may have a new certificate, so that
 * client-go asks again then and never holds one past its rotation.
 */
export async function execCredential(kubeconfig: string, now: Date): Promise<ExecCredential> {
  const { current, problem } = await readCurrent(kubeconfig, now);
  if (!current) {
    const why = problem ? `${problem.message.split(';')[0]} (${problem.fields['error'] ?? problem.fields['notAfter'] ?? problem.fields['notBefore'] ?? problem.kind})` : 'it has no client certificate yet';
    throw new TlsbootError(`${kubeconfig}: no valid client certificate: ${why}; is tlsboot run looking after it? (tlsboot status, tlsboot doctor)`);
  }
  const opens = rotationWindow(current.leaf.notBefore, current.leaf.notAfter).from;
  // Inside the window a new certificate may come at any time: ask again in a few minutes.
  const expires = opens.getTime() > now.getTime() ? opens : new Date(Math.min(current.leaf.notAfter.getTime(), now.getTime() + RECHECK_MS));
  return {
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    // kubelet's -current.pem holds the chain and the key: each field gets only its own blocks.
    status: {
      clientCertificateData: only(current.cert.certPem, (t) => t === 'CERTIFICATE'),
      clientKeyData: only(current.cert.keyPem, (t) => t.endsWith('PRIVATE KEY')),
      expirationTimestamp: expires.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    },
  };
}

/** The PEM blocks of `text` whose type passes `want`, in order. */
function only(text: string, want: (type: string) => boolean): string {
  return splitPem(text).filter((b) => want(b.type)).map((b) => b.pem).join('');
}
