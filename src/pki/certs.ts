// Reading PEM certificate chains and checking an issued certificate against the request.
import { X509Certificate } from 'node:crypto';
import { isIP, SocketAddress } from 'node:net';
import { CertificateMismatchError, CertificateParseError, errorMessage } from '../base/errors.js';
import { sameSubject, subjectOf, type Subject } from './csr.js';
import { x509 } from './x509.js';

export interface PemBlock {
  type: string;
  pem: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

export function splitPem(text: string): PemBlock[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ type: m[1] ?? '', pem: m[0] + '\n' }));
}

/** The CERTIFICATE blocks of a bundle (a CA file may hold several: a CA rotation's overlap). */
export function caList(bundle: string | undefined): string[] {
  return splitPem(bundle ?? '').filter((b) => b.type === 'CERTIFICATE').map((b) => b.pem);
}

/**
 * The DNS and IP subject alternative names of a certificate (PEM), in one spelling each: DNS
 * names lower-cased, IP addresses as node:net writes them. Sorted, to compare as sets.
 */
export function subjectAltNames(certPem: string): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const entry of (new X509Certificate(certPem).subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) ipAddresses.push(normalIp(entry.slice(11)));
  }
  return { dnsNames: dnsNames.sort(), ipAddresses: ipAddresses.sort() };
}

/** An IP address in node:net's spelling ("fd00::21", not "FD00:0:0:0:0:0:0:21"). */
export function normalIp(ip: string): string {
  return isIP(ip) === 6 ? new SocketAddress({ address: ip, family: 'ipv6' }).address : ip;
}

export interface CertInfo {
  subject: Subject;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  spki: Buffer;
  keyUsage: number;
  extKeyUsages: string[];
}

/** Parse every CERTIFICATE block; a CertificateParseError if there is none or one is corrupt. */
export function parseChain(text: string): CertInfo[] {
  const blocks = splitPem(text).filter((b) => b.type === 'CERTIFICATE');
  if (blocks.length === 0) throw new CertificateParseError('no PEM CERTIFICATE block');
  return blocks.map((b, i) => {
    try {
      return describe(new x509.X509Certificate(b.pem));
    } catch (err) {
      throw new CertificateParseError(`certificate ${i + 1} of the chain does not parse: ${errorMessage(err)}`);
    }
  });
}

function describe(cert: x509.X509Certificate): CertInfo {
  const ku = cert.getExtension('2.5.29.15');
  const eku = cert.getExtension('2.5.29.37');
  return {
    subject: subjectOf(cert.subjectName),
    issuer: cert.issuer,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialNumber: cert.serialNumber,
    spki: Buffer.from(cert.publicKey.rawData),
    keyUsage: ku ? new x509.KeyUsagesExtension(ku.rawData).usages : 0,
    extKeyUsages: eku ? new x509.ExtendedKeyUsageExtension(eku.rawData).usages.map(String) : [],
  };
}

const KEY_USAGE_BITS: Record<string, number> = {
  'digital signature': x509.KeyUsageFlags.digitalSignature,
  'content commitment': x509.KeyUsageFlags.nonRepudiation,
  'key encipherment': x509.KeyUsageFlags.keyEncipherment,
  'data encipherment': x509.KeyUsageFlags.dataEncipherment,
  'key agreement': x509.KeyUsageFlags.keyAgreement,
  'cert sign': x509.KeyUsageFlags.keyCertSign,
  'crl sign': x509.KeyUsageFlags.cRLSign,
};
const EXT_KEY_USAGES: Record<string, string> = {
  'server auth': '1.3.6.1.5.5.7.3.1',
  'client auth': '1.3.6.1.5.5.7.3.2',
  'code signing': '1.3.6.1.5.5.7.3.3',
  'email protection': '1.3.6.1.5.5.7.3.4',
  timestamping: '1.3.6.1.5.5.7.3.8',
  'ocsp signing': '1.3.6.1.5.5.7.3.9',
};

export interface Expectation {
  csrName: string;
  spki: Buffer;
  subject: Subject;
  usages: string[];
}

/**
 * The signer's answer must be for our key and subject, currently valid, and carry the usages we
 * asked for; otherwise nothing is written. Returns the parsed chain (leaf first).
 */
export function checkIssued(chainPem: string, expect: Expectation, now: Date): CertInfo[] {
  const fail = (why: string): never => {
    throw new CertificateMismatchError(`certificate issued for ${expect.csrName} rejected, nothing written: ${why}`);
  };
  let chain: CertInfo[] = [];
  try {
    chain = parseChain(chainPem);
  } catch (err) {
    fail(`not a PEM certificate chain (${(err as Error).message})`);
  }
  const leaf = chain[0]!;
  if (!leaf.spki.equals(expect.spki)) fail('it is for a different public key than the one in our request');
  if (!sameSubject(leaf.subject, expect.subject)) {
    fail(`its subject is CN=${JSON.stringify(leaf.subject.commonName)} O=[${leaf.subject.organizations.join(',')}], ` +
      `we asked for CN=${JSON.stringify(expect.subject.commonName)} O=[${expect.subject.organizations.join(',')}]`);
  }
  if (leaf.notAfter.getTime() <= now.getTime()) fail(`it expired at ${leaf.notAfter.toISOString()}`);
  // The signer backdates NotBefore by 5 minutes, so a future NotBefore means our clock is behind.
  if (leaf.notBefore.getTime() > now.getTime() + 5 * 60_000) {
    fail(`it is not valid before ${leaf.notBefore.toISOString()}; is this machine's clock behind?`);
  }
  for (const usage of expect.usages) {
    const bit = KEY_USAGE_BITS[usage];
    if (bit !== undefined && (leaf.keyUsage & bit) === 0) fail(`it lacks the key usage "${usage}"`);
    const oid = EXT_KEY_USAGES[usage];
    if (oid !== undefined && !leaf.extKeyUsages.includes(oid)) fail(`it lacks the extended key usage "${usage}"`);
  }
  return chain;
}
