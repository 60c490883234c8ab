// PKCS#10 requests shaped like Go's x509.CreateCertificateRequest output, and kubelet's
// deterministic CSR name.
import { createHash, webcrypto } from 'node:crypto';
import { CertificateParseError, errorMessage } from '../base/errors.js';
import { type KeyPair, spkiDer } from './keys.js';
import { x509 } from './x509.js';

/** The same CN and the same organizations, in any order (a signer may reorder RDNs). */
export function sameSubject(a: Subject, b: Subject): boolean {
  const orgs = (s: Subject): string => [...s.organizations].sort().join('\n');
  return a.commonName === b.commonName && orgs(a) === orgs(b);
}

export interface Subject {
  commonName: string;
  organizations: string[];
}

export interface CsrTemplate {
  subject: Subject;
  dnsNames: string[];
  ipAddresses: string[];
}

/** What Go (client-go's cert.MakeCSRFromTemplate) signs with for each key. */
function algorithms(pair: KeyPair): { importAlg: Algorithm & Record<string, unknown>; signAlg: Algorithm & Record<string, unknown> } {
  switch (pair.algorithm) {
    case 'ecdsa-p256':
      return { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signAlg: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ecdsa-p384':
      return { importAlg: { name: 'ECDSA', namedCurve: 'P-384' }, signAlg: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096': {
      const hash = pair.algorithm === 'rsa-2048' ? 'SHA-256' : pair.algorithm === 'rsa-3072' ? 'SHA-384' : 'SHA-512';
      const alg = { name: 'RSASSA-PKCS1-v1_5', hash };
      return { importAlg: alg, signAlg: alg };
    }
    case 'ed25519':
      return { importAlg: { name: 'Ed25519' }, signAlg: { name: 'Ed25519' } };
  }
}

export async function buildCsrPem(pair: KeyPair, template: CsrTemplate): Promise<string> {
  const { importAlg, signAlg } = algorithms(pair);
  const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlg, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spkiDer(pair), importAlg, true, ['verify']);
  // Go writes O before CN (pkix.Name.ToRDNSequence); keep that order.
  const name: x509.JsonName = [];
  for (const o of template.subject.organizations) name.push({ O: [o] });
  if (template.subject.commonName) name.push({ CN: [template.subject.commonName] });
  const extensions: x509.Extension[] = [];
  const sans: x509.JsonGeneralName[] = [
    ...template.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...template.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: { privateKey: privateKey as CryptoKey, publicKey: publicKey as CryptoKey },
    signingAlgorithm: signAlg,
    extensions,
  });
  return csr.toString('pem') + '\n';
}

/**
 * kubelet's digestedName (pkg/kubelet/certificate/bootstrap): SHA-512/256 over the base64url of
 * the SPKI, the CN, each O and each usage in order, each followed by '|'. The same key and
 * request always give the same name, so a retry finds the CSR it made before. Rotation uses the
 * same digest under kubelet's rotation prefix `csr-`.
 */
export function digestedName(spki: Uint8Array, subject: Subject, usages: readonly string[], prefix = 'node-csr-'): string {
  const hash = createHash('sha512-256');
  const write = (data: Uint8Array | string): void => {
    hash.update(Buffer.from(data).toString('base64url'));
    hash.update('|');
  };
  write(spki);
  write(subject.commonName);
  for (const o of subject.organizations) write(o);
  for (const u of usages) write(u);
  return `${prefix}${hash.digest('base64url')}`;
}

const SAN_OID = '2.5.29.17';

export interface ParsedCsr {
  subject: Subject;
  spki: Buffer;
  dnsNames: string[];
  ipAddresses: string[];
  /** SANs of any other kind (email, URI, ...), as "type:value". */
  otherNames: string[];
  signatureValid: boolean;
}

/** Parse a PEM PKCS#10 request (the API's spec.request); a CertificateParseError if it is not one. */
export async function parseCsrPem(pem: string): Promise<ParsedCsr> {
  try {
    return await parseRequest(pem);
  } catch (err) {
    throw new CertificateParseError(`the certificate request does not parse: ${errorMessage(err)}`);
  }
}

async function parseRequest(pem: string): Promise<ParsedCsr> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const raw = csr.getExtension(SAN_OID);
  const names = raw ? new x509.SubjectAlternativeNameExtension(raw.rawData).names.toJSON() : [];
  return {
    subject: subjectOf(csr.subjectName),
    spki: Buffer.from(csr.publicKey.rawData),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    otherNames: names.filter((n) => n.type !== 'dns' && n.type !== 'ip').map((n) => `${n.type}:${n.value}`),
    signatureValid: await csr.verify(),
  };
}

export function subjectOf(name: x509.Name): Subject {
  return { commonName: name.getField('CN')[0] ?? '', organizations: name.getField('O') };
}
