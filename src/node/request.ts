// One CSR of an identity, made so that asking again finds it: the key waits in a file until its
// certificate is in place, and the CSR's name is derived from that key (kubelet's bootstrap,
// pkg/kubelet/certificate/bootstrap; tlsboot does the same for rotation).
import { promises as fs } from 'node:fs';
import { ApiError, ConfigError, TlsbootError } from '../base/errors.js';
import { readIfExists, writeFileAtomic } from '../base/fsutil.js';
import type { Logger } from '../base/log.js';
import type { ApiClient } from '../kube/api.js';
import type { CsrObject } from '../kube/csrtypes.js';
import { parseChain } from '../pki/certs.js';
import { buildCsrPem, parseCsrPem, sameSubject } from '../pki/csr.js';
import { generateKey, loadPrivateKey, privateKeyPem, spkiDer, type KeyAlgorithm, type KeyPair } from '../pki/keys.js';
import type { Identity } from './identity.js';

/**
 * The key of the CSR being asked for, kept in `file` (`<prefix>.key.tmp`, 0600) until its
 * certificate is in place, so that the CSR name stays the same across retries and restarts.
 */
export async function pendingKey(file: string, algorithm: KeyAlgorithm, log: Logger): Promise<KeyPair> {
  const existing = await readIfExists(file);
  if (existing) {
    try {
      const key = loadPrivateKey(existing.toString('utf8'), file);
      if (key.algorithm === algorithm) return key;
      log.info('the saved key has another algorithm than asked for; making a new one', { path: file });
    } catch {
      log.warn('the saved key is unreadable; making a new one', { path: file });
    }
  }
  const key = await generateKey(algorithm);
  await writeFileAtomic(file, privateKeyPem(key), { mode: 0o600 });
  return key;
}

export interface CsrToMake {
  name: string;
  key: KeyPair;
  usages: string[];
  identity: Identity;
  /** Where the key waits: named in messages, removed when the CSR is spoiled. */
  keyFile: string;
  now: Date;
  log: Logger;
}

/** POST the CSR; if the name exists, reuse it only if it is ours (kubelet's ensureCompatible). */
export async function createOrReuse(api: ApiClient, c: CsrToMake, signal: AbortSignal): Promise<CsrObject> {
  const id = c.identity;
  const request = await buildCsrPem(c.key, id);
  try {
    return await api.createCsr(csrObject(c.name, request, c.usages, id), signal);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 409) throw err;
  }
  const existing = await api.getCsr(c.name, signal);
  const parsed = await parseCsrPem(Buffer.from(existing.spec.request, 'base64').toString('utf8'));
  const ours = parsed.signatureValid && parsed.spki.equals(spkiDer(c.key)) && sameSubject(parsed.subject, id.subject) && existing.spec.signerName === id.signerName;
  if (!ours) {
    throw new ConfigError(`certificate signing request ${c.name} already exists but was not made from our key and subject; delete it (kubectl delete csr ${c.name}) or remove ${c.keyFile}`);
  }
  const issued = existing.status?.certificate;
  if (issued) {
    const expired = parseChain(Buffer.from(issued, 'base64').toString('utf8')).some((cert) => cert.notAfter.getTime() <= c.now.getTime());
    if (expired) {
      await fs.rm(c.keyFile, { force: true });
      throw new TlsbootError(`certificate signing request ${c.name} holds an expired certificate; starting over with a new key`);
    }
  }
  c.log.info('reusing the certificate signing request made earlier with the same key', { csr: c.name });
  return existing;
}

function csrObject(name: string, requestPem: string, usages: string[], id: Identity): CsrObject {
  const spec: CsrObject['spec'] = { request: Buffer.from(requestPem).toString('base64'), signerName: id.signerName, usages };
  if (id.expirationSeconds !== undefined) spec.expirationSeconds = id.expirationSeconds;
  return { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name }, spec };
}
