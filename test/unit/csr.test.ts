import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { buildCsrPem, digestedName, parseCsrPem } from '../../src/pki/csr.js';
import { buildIdentity, usagesFor } from '../../src/node/identity.js';
import { generateKey, isRsa, KEY_ALGORITHMS, loadPrivateKey, privateKeyPem, spkiDer, type KeyPair } from '../../src/pki/keys.js';
import { tempDir } from '../support/helpers.js';

const run = promisify(execFile);

t.test('digestedName matches kubelet (vectors computed with Go, see test notes)', async (t) => {
  // P-256 private scalar 0x1111...11. The names were computed in Go (crypto/x509
  // MarshalPKIXPublicKey + kubelet's digestedName); the e2e suite also re-derives the real
  // kubelet's CSR name from its request. Node derives the public key from a SEC1 DER.
  const sec1 = Buffer.concat([Buffer.from('30310201010420', 'hex'), Buffer.from('11'.repeat(32), 'hex'), Buffer.from('a00a06082a8648ce3d030107', 'hex')]);
  const priv = createPrivateKey({ key: sec1, format: 'der', type: 'sec1' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  t.equal(spki.toString('hex'), '3059301306072a8648ce3d020106082a8648ce3d030107034200040217e617f0b6443928278f96999e69a23a4f2c152bdf6d6cdf66e5b80282d4ed194a7debcb97712d2dda3ca85aa8765a56f45fc758599652f2897c65306e5794');
  const subject = { commonName: 'system:node:node-1', organizations: ['system:nodes'] };
  t.equal(digestedName(spki, subject, ['digital signature', 'client auth']), 'node-csr-Je-N6E1PjGdK8lgBowBDsGSB3q3OAqp4K-_U4u2GnsI');
  t.equal(digestedName(spki, subject, ['digital signature', 'key encipherment', 'client auth']), 'node-csr-qDD5ah12Tb-bBjLH2OMjF6DXBxdq9wRi27U9PCj_NS8');
  t.equal(digestedName(spki, subject, ['digital signature', 'client auth', 'key encipherment']), 'node-csr-uhnsV7Wot3HVI70_NhXqggEyLUcS67Ech_ggDvBwwZE');
  t.equal(digestedName(spki, subject, ['digital signature', 'client auth']).length, 52);
});

t.test('kubelet usages: key encipherment only for RSA, in each path\'s order', async (t) => {
  const id = buildIdentity('n1');
  t.same(usagesFor(id, false, 'bootstrap'), ['digital signature', 'client auth']);
  t.same(usagesFor(id, false, 'rotation'), ['digital signature', 'client auth']);
  t.same(usagesFor(id, true, 'bootstrap'), ['digital signature', 'client auth', 'key encipherment']);
  t.same(usagesFor(id, true, 'rotation'), ['digital signature', 'key encipherment', 'client auth']);
  const serving = buildIdentity('n1', { signerName: 'kubernetes.io/kubelet-serving', ipAddresses: ['10.0.0.5'] });
  t.same(usagesFor(serving, false, 'rotation'), ['digital signature', 'server auth']);
  t.equal(serving.filePrefix, 'kubelet-server');
  const custom = buildIdentity('n1', { usages: ['client auth'] });
  t.same(usagesFor(custom, true, 'bootstrap'), ['client auth']);
});

t.test('identity validation errors name the flag', async (t) => {
  t.throws(() => buildIdentity('Bad_Name'), { message: /--node-name "Bad_Name" is not a valid node name/ });
  t.throws(() => buildIdentity('n', { expirationSeconds: 599 }), { message: /--expiration-seconds must be a whole number of at least 600/ });
  t.throws(() => buildIdentity('n', { usages: ['client auth', 'client auth'] }), { message: /lists a usage twice/ });
  t.throws(() => buildIdentity('n', { usages: ['flying'] }), { message: /--usage "flying" is not a known usage/ });
  t.throws(() => buildIdentity('n', { signerName: 'nope' }), { message: /--signer-name "nope" must look like domain\/path/ });
  t.throws(() => buildIdentity('n', { signerName: 'kubernetes.io/legacy-unknown' }), { message: /legacy-unknown/ });
  t.throws(() => buildIdentity('n', { filePrefix: '../x' }), { message: /--file-prefix/ });
});

for (const algorithm of KEY_ALGORITHMS) {
  t.test(`CSR with ${algorithm}: verifies with openssl, O before CN, no extensions`, async (t) => {
    const dir = await tempDir(t);
    const key = await generateKey(algorithm);
    const pem = await buildCsrPem(key, { subject: { commonName: 'system:node:n1', organizations: ['system:nodes'] }, dnsNames: [], ipAddresses: [] });
    const file = path.join(dir, 'req.pem');
    await fs.writeFile(file, pem);
    const { stdout, stderr } = await run('openssl', ['req', '-in', file, '-noout', '-verify', '-subject', '-text']);
    t.match(stderr + stdout, /verify OK/i);
    t.match(stdout, /subject=O ?= ?system:nodes, ?CN ?= ?system:node:n1/);
    t.notMatch(stdout, /X509v3/, 'no extensions');
    const parsed = await parseCsrPem(pem);
    t.ok(parsed.signatureValid);
    t.ok(parsed.spki.equals(spkiDer(key)));
    t.same(parsed.subject, { commonName: 'system:node:n1', organizations: ['system:nodes'] });
    // the private key round-trips through the PEM kubelet's keyutil would write
    const back = loadPrivateKey(privateKeyPem(key), 'test');
    t.equal(back.algorithm, algorithm);
    t.equal(isRsa(back), algorithm.startsWith('rsa'));
    t.match(privateKeyPem(key), algorithm.startsWith('ecdsa') ? /BEGIN EC PRIVATE KEY/ : algorithm.startsWith('rsa') ? /BEGIN RSA PRIVATE KEY/ : /BEGIN PRIVATE KEY/);
  });
}

t.test('SANs go into the extension request', async (t) => {
  const key: KeyPair = await generateKey('ecdsa-p256');
  const pem = await buildCsrPem(key, { subject: { commonName: 'system:node:n1', organizations: ['system:nodes'] }, dnsNames: ['n1.example'], ipAddresses: ['10.0.0.5', '::1'] });
  const parsed = await parseCsrPem(pem);
  t.same(parsed.dnsNames, ['n1.example']);
  t.same(parsed.ipAddresses, ['10.0.0.5', '::1']);
});

t.test('unreadable and unsupported keys', async (t) => {
  t.throws(() => loadPrivateKey('garbage', '/x/key.tmp'), { message: /\/x\/key.tmp: not a readable private key/ });
  const { generateKeyPairSync } = await import('node:crypto');
  const ed448 = generateKeyPairSync('ed448').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  t.throws(() => loadPrivateKey(ed448, '/x/k'), { message: /unsupported key type \(ed448\)/ });
});
