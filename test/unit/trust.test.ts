// The pieces of the cluster's trust: kubeadm pins (against openssl's own hash), cluster-info's
// shape and signature, the CA union and when a CA may go, and the removal of a bootstrap token.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { TlsbootError } from '../../src/base/errors.js';
import { ClusterInfoError, detachedJws, parseClusterInfo, renderClusterInfoKubeconfig, verifyClusterInfo } from '../../src/kube/clusterinfo.js';
import { parseConfig } from '../../src/daemon/config.js';
import { removeBootstrapToken } from '../../src/node/credentials.js';
import { issuedByOneOf, reconcile } from '../../src/node/trust.js';
import { parsePin, pinned, spkiPin } from '../../src/pki/pin.js';
import { normalIp, subjectAltNames } from '../../src/pki/certs.js';
import { tempDir } from '../support/helpers.js';

const run = promisify(execFile);
const TOKEN = 'abcdef.0123456789abcdef';

/** A self-signed CA and a leaf it signs, made by openssl. */
async function makeCa(dir: string, name: string): Promise<{ ca: string; leaf: string }> {
  const o = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir });
  await o('req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-days', '1', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`);
  await o('req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', `${name}-leaf.key`, '-out', `${name}-leaf.csr`, '-subj', '/CN=leaf');
  await o('x509', '-req', '-in', `${name}-leaf.csr`, '-CA', `${name}.crt`, '-CAkey', `${name}.key`, '-CAcreateserial', '-days', '1', '-out', `${name}-leaf.crt`);
  return { ca: await fs.readFile(path.join(dir, `${name}.crt`), 'utf8'), leaf: await fs.readFile(path.join(dir, `${name}-leaf.crt`), 'utf8') };
}

const dir = await tempDir(t);
const one = await makeCa(dir, 'ca1');
const two = await makeCa(dir, 'ca2');

t.test('pins are kubeadm\'s: sha256 over the DER SubjectPublicKeyInfo, as openssl computes it', async (t) => {
  const { stdout } = await run('sh', ['-c', `openssl x509 -pubkey -noout -in ${path.join(dir, 'ca1.crt')} | openssl pkey -pubin -outform der | sha256sum`]);
  t.equal(spkiPin(one.ca), `sha256:${stdout.split(' ')[0]}`);
  t.equal(parsePin(`SHA256:${'A'.repeat(64)}`.replace('SHA256', 'sha256'), '--x'), `sha256:${'a'.repeat(64)}`);
  t.throws(() => parsePin('sha1:abc', '--ca-cert-hash'), /--ca-cert-hash "sha1:abc" must be sha256:<64 hex digits>/);
  t.same(pinned([one.ca, two.ca], ['sha256:' + '0'.repeat(64), spkiPin(two.ca)]), [two.ca], 'every pin counts');
});

t.test('cluster-info: parsed, its signature checked', async (t) => {
  const kubeconfig = renderClusterInfoKubeconfig('https://10.0.0.1:6443', [one.ca, two.ca]);
  const cm = { data: { kubeconfig, 'jws-kubeconfig-abcdef': detachedJws(kubeconfig, 'abcdef', '0123456789abcdef') } };
  const info = parseClusterInfo(cm, 'ci');
  t.equal(info.server, 'https://10.0.0.1:6443');
  t.same(info.caPems, [one.ca, two.ca], 'both CAs of the bundle (kubeadm#1399)');
  t.doesNotThrow(() => verifyClusterInfo(info, TOKEN, 'ci'));

  const tampered = { ...info, kubeconfig: kubeconfig.replace('10.0.0.1', '10.6.6.6') };
  t.throws(() => verifyClusterInfo(tampered, TOKEN, 'ci'), ClusterInfoError, 'altered content');
  t.throws(() => verifyClusterInfo(info, 'abcdef.ffffffffffffffff', 'ci'), /does not verify/, 'another secret');
  const other = { ...info, signatures: { abcdef: detachedJws(kubeconfig, 'zzzzzz', '0123456789abcdef') } };
  t.throws(() => verifyClusterInfo(other, TOKEN, 'ci'), /does not verify/, 'a signature made for another token id (kid)');
  const none = Buffer.from(JSON.stringify({ alg: 'none', kid: 'abcdef' })).toString('base64url');
  t.throws(() => verifyClusterInfo({ ...info, signatures: { abcdef: `${none}..` } }, TOKEN, 'ci'), /does not verify/, 'alg none');
  const missing = (() => {
    try {
      verifyClusterInfo({ ...info, signatures: {} }, TOKEN, 'ci');
    } catch (err) {
      return err;
    }
    return undefined;
  })();
  t.ok(missing instanceof TlsbootError && !(missing instanceof ClusterInfoError), 'no signature yet: retried, not refused');

  const bad: Array<[unknown, RegExp]> = [
    [{}, /has no data/], [{ data: {} }, /data.kubeconfig is missing/], [{ data: { kubeconfig: 'a: [' } }, /not YAML/],
    [{ data: { kubeconfig: 'clusters: []' } }, /no clusters\[0\].cluster/],
    [{ data: { kubeconfig: 'clusters: [{cluster: {server: "https://x"}}]' } }, /no certificate-authority-data/],
    [{ data: { kubeconfig: 'clusters: [{cluster: {server: "https://x", certificate-authority-data: eA==}}]' } }, /holds no PEM certificate/],
  ];
  for (const [v, re] of bad) t.throws(() => parseClusterInfo(v, 'ci'), re, String(re));
});

t.test('the CA union: new CAs added; an unlisted one dropped only once the server verifies without it', async (t) => {
  const add = await reconcile([one.ca], [one.ca, two.ca], async () => true);
  t.same([add.trusted, add.added, add.dropped], [[one.ca, two.ca], [two.ca], []]);
  const stillNeeded = await reconcile([one.ca, two.ca], [two.ca], async () => false);
  t.same([stillNeeded.trusted, stillNeeded.dropped, stillNeeded.kept], [[one.ca, two.ca], [], [one.ca]], 'the server still needs CA1');
  let asked: string[] = [];
  const gone = await reconcile([one.ca, two.ca], [two.ca], async (cas) => {
    asked = cas;
    return true;
  });
  t.same([gone.trusted, gone.dropped, asked], [[two.ca], [one.ca], [two.ca]], 'dropped, after a handshake with CA2 alone');
  t.same((await reconcile([one.ca], [one.ca], async () => true)).added, [], 'nothing new');
  t.ok(issuedByOneOf(one.leaf, [two.ca, one.ca]));
  t.notOk(issuedByOneOf(one.leaf, [two.ca]));
});

t.test('the trust settings: pins, refresh, jitter, removal; errors name the field', async (t) => {
  const base = { name: 'n', kubeconfig: '/k', certDir: '/p', nodeName: 'n1' };
  const cfg = parseConfig({ identities: [{ ...base, caCertHashes: [spkiPin(one.ca)], caRefreshInterval: '0', reissueJitter: '30s', removeBootstrapCredential: true }] }, 'c.yaml');
  const id = cfg.identities[0]!;
  t.same([id.caCertHashes, id.caRefreshIntervalMs, id.reissueJitterMs, id.removeBootstrapCredential], [[spkiPin(one.ca)], 0, 30_000, true]);
  t.throws(() => parseConfig({ identities: [{ ...base, caCertHashes: ['x'] }] }, 'c.yaml'), /c.yaml: identities\[0\] \(n\).caCertHashes "x" must be sha256/);
  t.throws(() => parseConfig({ identities: [{ ...base, caRefreshInterval: 'soon' }] }, 'c.yaml'), /caRefreshInterval "soon" is not a duration/);
  t.throws(() => parseConfig({ identities: [{ ...base, removeBootstrapCredential: 'yes' }] }, 'c.yaml'), /removeBootstrapCredential must be true or false/);
});

t.test('removing the bootstrap token: the token file, the token of a kubeconfig tlsboot wrote, never a foreign one', async (t) => {
  const d = await tempDir(t);
  const tokenFile = path.join(d, 'token');
  await fs.writeFile(tokenFile, TOKEN);
  t.same(await removeBootstrapToken({ bootstrapTokenFile: tokenFile }), { removed: [tokenFile] });
  await t.rejects(fs.stat(tokenFile));

  const ours = path.join(d, 'ours.kubeconfig');
  await fs.writeFile(ours, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://x"}}]\nusers: [{name: tls-bootstrap, user: {token: ${TOKEN}}}]\ncontexts: [{name: x, context: {cluster: c, user: tls-bootstrap}}]\ncurrent-context: x\n`);
  t.same(await removeBootstrapToken({ bootstrapKubeconfig: ours }), { removed: [`${ours} (token)`] });
  const left = await fs.readFile(ours, 'utf8');
  t.notMatch(left, /token|abcdef/);
  t.match(left, /server: "?https:\/\/x/);
  t.equal((await fs.stat(ours)).mode & 0o777, 0o600);

  const foreign = path.join(d, 'foreign.kubeconfig');
  const text = `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://x"}}]\nusers: [{name: admin, user: {token: ${TOKEN}}}]\ncontexts: [{name: x, context: {cluster: c, user: admin}}]\ncurrent-context: x\n`;
  await fs.writeFile(foreign, text);
  const r = await removeBootstrapToken({ bootstrapKubeconfig: foreign });
  t.same(r.removed, []);
  t.match(r.problem, /was not written by tlsboot \(its user is not tls-bootstrap\): remove its token by hand/);
  t.equal(await fs.readFile(foreign, 'utf8'), text, 'left as it was');
});

t.test('subject alternative names in one spelling, to compare what is held with what is asked', async (t) => {
  const d = await tempDir(t);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-keyout', path.join(d, 'k'), '-out', path.join(d, 'c'),
    '-subj', '/CN=x', '-addext', 'subjectAltName=DNS:Srv1.Example.com,DNS:srv1,IP:10.0.0.1,IP:fd00::21']);
  t.same(subjectAltNames(await fs.readFile(path.join(d, 'c'), 'utf8')), { dnsNames: ['srv1', 'srv1.example.com'], ipAddresses: ['10.0.0.1', 'fd00::21'] });
  t.same(subjectAltNames(one.ca), { dnsNames: [], ipAddresses: [] }, 'none');
  t.equal(normalIp('FD00:0:0:0:0:0:0:21'), 'fd00::21');
});
