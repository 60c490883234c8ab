import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { ConfigError } from '../../src/base/errors.js';
import { readKubeconfig, renderNodeKubeconfig } from '../../src/kube/kubeconfig.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { tempDir } from '../support/helpers.js';

const fake = await FakeApiServer.start();
t.teardown(() => fake.stop());
const ca = Buffer.from(fake.caPem).toString('base64');

function kc(cluster: string, user: string, extra = ''): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
${cluster}
users:
- name: u
  user:
${user}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
${extra}`;
}

t.test('reads token, CA data, tls-server-name', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'kc');
  await fs.writeFile(file, kc(`    server: https://127.0.0.1:6443/\n    certificate-authority-data: ${ca}\n    tls-server-name: kubernetes`, '    token: abcdef.0123456789abcdef'));
  const cfg = await readKubeconfig(file);
  t.equal(cfg.server, 'https://127.0.0.1:6443');
  t.equal(cfg.token, 'abcdef.0123456789abcdef');
  t.equal(cfg.tlsServerName, 'kubernetes');
  t.equal(cfg.caPem, fake.caPem);
  t.equal(cfg.caPath, undefined);
  t.equal(cfg.insecureSkipTlsVerify, false);
});

t.test('relative CA, tokenFile and client cert paths resolve against the kubeconfig folder', async (t) => {
  const dir = await tempDir(t);
  await fs.mkdir(path.join(dir, 'sub'));
  await fs.writeFile(path.join(dir, 'sub', 'ca.crt'), fake.caPem);
  await fs.writeFile(path.join(dir, 'sub', 'token'), 'abcdef.0123456789abcdef\n');
  const cert = await fake.issueClientCert('system:node:a', ['system:nodes']);
  await fs.writeFile(path.join(dir, 'sub', 'c.pem'), cert.certPem + cert.keyPem);
  const file = path.join(dir, 'sub', 'kc');
  await fs.writeFile(file, kc('    server: https://127.0.0.1:1\n    certificate-authority: ca.crt', '    tokenFile: token\n    client-certificate: c.pem\n    client-key: c.pem'));
  const cfg = await readKubeconfig(file);
  t.equal(cfg.caPath, path.join(dir, 'sub', 'ca.crt'));
  t.equal(cfg.tokenFile, path.join(dir, 'sub', 'token'));
  t.equal(cfg.token, 'abcdef.0123456789abcdef');
  t.equal(cfg.clientCertificate?.certPath, path.join(dir, 'sub', 'c.pem'));
  t.match(cfg.clientCertificate?.keyPem, /PRIVATE KEY/);
});

const bad: Array<[string, string, RegExp]> = [
  ['not yaml', 'clusters: [\n', /not valid YAML/],
  ['a list', '- a\n- b\n', /not a kubeconfig/],
  ['no current-context', kc('    server: https://x', '    token: t').replace('current-context: x', ''), /current-context is missing/],
  ['unknown context', kc('    server: https://x', '    token: t').replace('current-context: x', 'current-context: y'), /contexts has no entry named "y"/],
  ['no clusters', 'current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n', /clusters is missing or not a list/],
  ['no server', kc('    insecure-skip-tls-verify: false', '    token: t'), /clusters\[c\]\.cluster\.server is missing/],
  ['http server', kc('    server: http://127.0.0.1:8080', '    token: t'), /must be an https:\/\/ URL/],
  ['bad url', kc('    server: "::nope"', '    token: t'), /is not a URL/],
  ['server not string', kc('    server: 42', '    token: t'), /server must be a string/],
  ['bad CA base64', kc('    server: https://x\n    certificate-authority-data: "%%%"', '    token: t'), /certificate-authority-data is not valid base64/],
  ['CA data not PEM', kc(`    server: https://x\n    certificate-authority-data: ${Buffer.from('hello').toString('base64')}`, '    token: t'), /does not decode to a PEM CERTIFICATE/],
  ['CA file missing', kc('    server: https://x\n    certificate-authority: /nonexistent/ca.crt', '    token: t'), /certificate-authority: cannot read \/nonexistent\/ca.crt: no such file/],
  ['insecure not bool', kc('    server: https://x\n    insecure-skip-tls-verify: "yes"', '    token: t'), /insecure-skip-tls-verify must be true or false/],
  ['exec plugin', kc('    server: https://x', '    exec: {command: foo}'), /users\[u\]\.user\.exec is not supported/],
  ['cert without key', kc('    server: https://x', '    client-certificate: /tmp/x.pem'), /client-key or client-key-data is missing/],
  ['tokenFile missing', kc('    server: https://x', '    tokenFile: /nonexistent/token'), /tokenFile: cannot read \/nonexistent\/token/],
  ['empty token', kc('    server: https://x', '    token: "  "'), /token is empty/],
];

for (const [name, text, re] of bad) {
  t.test(`malformed: ${name}`, async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, 'bad.kubeconfig');
    await fs.writeFile(file, text);
    const err = await readKubeconfig(file).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof ConfigError, 'a ConfigError');
    const msg = (err as Error).message;
    t.match(msg, re);
    t.ok(msg.startsWith(file), 'names the file first');
    t.notMatch(msg, /\n/, 'one line');
  });
}

t.test('missing file', async (t) => {
  await t.rejects(readKubeconfig('/nonexistent/kubeconfig'), { message: '/nonexistent/kubeconfig: kubeconfig not found' });
});

t.test('renders kubelet\'s kubeconfig names, CA as path or data', async (t) => {
  const withPath = parse(renderNodeKubeconfig({ server: 'https://s:6443', caPath: '/etc/ca.crt', insecureSkipTlsVerify: false, pemPath: '/pki/kubelet-client-current.pem' }));
  t.same(withPath, {
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'default-cluster', cluster: { server: 'https://s:6443', 'certificate-authority': '/etc/ca.crt' } }],
    users: [{ name: 'default-auth', user: { 'client-certificate': '/pki/kubelet-client-current.pem', 'client-key': '/pki/kubelet-client-current.pem' } }],
    contexts: [{ name: 'default-context', context: { cluster: 'default-cluster', user: 'default-auth', namespace: 'default' } }],
    'current-context': 'default-context',
  });
  const withData = parse(renderNodeKubeconfig({ server: 'https://s', caPem: fake.caPem, insecureSkipTlsVerify: false, tlsServerName: 'kubernetes', pemPath: '/p' }));
  t.equal(Buffer.from(withData.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), fake.caPem);
  t.equal(withData.clusters[0].cluster['tls-server-name'], 'kubernetes');
});
