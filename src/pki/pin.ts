// kubeadm's CA pins: "sha256:" and the hex SHA-256 of a CA certificate's DER SubjectPublicKeyInfo
// (cmd/kubeadm/app/util/pubkeypin), so the hash an operator already has for `kubeadm join
// --discovery-token-ca-cert-hash` works here unchanged.
import { createHash, X509Certificate } from 'node:crypto';
import { ConfigError } from '../base/errors.js';

/** The pin of a certificate (PEM). */
export function spkiPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** A pin as given by a user, checked and lower-cased; `where` names the flag or field. */
export function parsePin(value: string, where: string): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(value.trim());
  if (!m) throw new ConfigError(`${where} ${JSON.stringify(value)} must be sha256:<64 hex digits> (kubeadm's --discovery-token-ca-cert-hash format)`);
  return `sha256:${m[1]!.toLowerCase()}`;
}

/** The certificates whose pin is among `pins` (every pin counts, not only the first). */
export function pinned(certPems: string[], pins: readonly string[]): string[] {
  const want = new Set(pins);
  return certPems.filter((pem) => want.has(spkiPin(pem)));
}
