// tlsboot against the in-process fake API server: the bootstrap scenarios. Each has a real
// twin in test/e2e against kube-apiserver + kube-controller-manager.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse } from 'yaml';
import { digestedName, parseCsrPem } from '../../src/pki/csr.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { fakeNode, TOKENS } from '../support/fakenode.js';
import { CliProcess, listDir, runInProcess, until } from '../support/helpers.js';

const run = promisify(execFile);

t.test('fresh bootstrap writes kubelet\'s layout and a CSR shaped like kubelet\'s', async (t) => {
  const { fake, dir, args, pki } = await fakeNode(t);
  const res = await runInProcess(args());
  t.equal(res.code, 0, res.stderr);
  const files = await listDir(pki);
  t.equal(files.length, 2);
  t.match(files[0], /^kubelet-client-\d{4}(-\d{2}){5}\.pem$/);
  t.equal(files[1], 'kubelet-client-current.pem');
  t.equal(await fs.readlink(path.join(pki, files[1]!)), path.join(pki, files[0]!));
  t.equal((await fs.stat(path.join(pki, files[0]!))).mode & 0o777, 0o600);
  const kc = parse(await fs.readFile(path.join(dir, 'kubeconfig'), 'utf8'));
  t.equal(kc['current-context'], 'default-context');
  t.equal(kc.users[0].user['client-certificate'], path.join(pki, 'kubelet-client-current.pem'));
  t.equal(kc.users[0].user['client-key'], path.join(pki, 'kubelet-client-current.pem'));
  t.equal(kc.clusters[0].cluster.server, fake.url);
  t.equal((await fs.stat(path.join(dir, 'kubeconfig'))).mode & 0o777, 0o600);

  t.equal(fake.csrs.size, 1);
  const [csr] = [...fake.csrs.values()];
  const req = await parseCsrPem(Buffer.from(csr!.spec.request, 'base64').toString());
  t.equal(csr!.metadata.name, digestedName(req.spki, req.subject, csr!.spec.usages), 'kubelet\'s deterministic name');
  t.same(csr!.spec.usages, ['digital signature', 'client auth']);
  t.equal(csr!.spec.signerName, 'kubernetes.io/kube-apiserver-client-kubelet');
  t.notOk('expirationSeconds' in csr!.spec);
  t.equal(csr!.spec.username, 'system:bootstrap:abcdef');
  t.same(req.subject, { commonName: 'system:node:node-1', organizations: ['system:nodes'] });

  // openssl sees a matching pair: the cert's public key is the key's public key
  const pem = path.join(pki, 'kubelet-client-current.pem');
  const { stdout: subj } = await run('openssl', ['x509', '-in', pem, '-noout', '-subject', '-dates']);
  t.match(subj, /subject=O ?= ?system:nodes, ?CN ?= ?system:node:node-1/);
  const { stdout: certPub } = await run('openssl', ['x509', '-in', pem, '-noout', '-pubkey']);
  const { stdout: keyPub } = await run('openssl', ['pkey', '-in', pem, '-pubout']);
  t.equal(certPub, keyPub);
  t.notOk((await listDir(pki)).includes('kubelet-client.key.tmp'), 'bootstrap key moved into the pair');
  t.notMatch(res.stderr, /0123456789abcdef/, 'token secret never logged');
  t.notMatch(res.stderr, /PRIVATE KEY/);
});

t.test('restart with a valid certificate creates no CSR', async (t) => {
  const { fake, args } = await fakeNode(t);
  t.equal((await runInProcess(args())).code, 0);
  const before = fake.requests.length;
  const again = await runInProcess(args());
  t.equal(again.code, 0);
  t.equal(fake.requests.length, before, 'not a single request to the API server');
  t.equal(fake.csrs.size, 1);
});

t.test('restart mid-wait reuses the same CSR', async (t) => {
  const { fake, args, pki } = await fakeNode(t, { autoApprove: false });
  const first = await runInProcess(args('--approval-timeout', '1s'));
  t.equal(first.code, 1);
  const name = [...fake.csrs.keys()][0]!;
  t.match(first.stderr, new RegExp(`was not approved within 1 s; approve it with: kubectl certificate approve ${name}`));
  t.match(first.stderr, /waiting for the certificate signing request to be approved.*approve="kubectl certificate approve/);
  t.equal((await fs.stat(path.join(pki, 'kubelet-client.key.tmp'))).mode & 0o777, 0o600, 'key kept for the retry');
  const second = runInProcess(args());
  await until('second POST', () => fake.requests.filter((r) => r.method === 'POST').length === 2);
  await until('watch', () => fake.watcherCount() === 1);
  fake.approve(name);
  const res = await second;
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /reusing the certificate signing request made earlier/);
  t.equal(fake.csrs.size, 1, 'one CSR in all');
});

t.test('denied: exit 3 with the reason, and a fresh key next time', async (t) => {
  const { fake, args, pki } = await fakeNode(t, { autoApprove: false });
  const p = runInProcess(args());
  await until('watch', () => fake.watcherCount() === 1);
  const name = [...fake.csrs.keys()][0]!;
  fake.deny(name, 'NotOnMyWatch', 'node-1 is not in the inventory');
  const res = await p;
  t.equal(res.code, 3);
  t.match(res.stderr, new RegExp(`certificate signing request ${name} was denied \\(reason: NotOnMyWatch, message: node-1 is not in the inventory\\)`));
  t.notOk((await listDir(pki)).includes('kubelet-client.key.tmp'));
  t.same((await listDir(pki)).filter((f) => f.endsWith('.pem')), [], 'nothing written');
  // The state file for `tlsboot status` is complete before the command returns (no write left
  // in flight for the process exit to cut short).
  const state = JSON.parse(await fs.readFile(path.join(pki, '.kubelet-client.state.json'), 'utf8')) as { lastError?: string };
  t.match(state.lastError, /was denied \(reason: NotOnMyWatch/);
});

t.test('failed (signer validation): exit 3 with the signer\'s message', async (t) => {
  const { fake, args } = await fakeNode(t, { autoApprove: false });
  const p = runInProcess(args('--organization', 'not-nodes'));
  await until('watch', () => fake.watcherCount() === 1);
  fake.approve([...fake.csrs.keys()][0]!);
  const res = await p;
  t.equal(res.code, 3);
  t.match(res.stderr, /failed \(reason: SignerValidationFailure, message: subject organization is not system:nodes\)/);
});

t.test('CSR deleted while waiting: requested again and issued', async (t) => {
  const { fake, args } = await fakeNode(t, { autoApprove: false });
  const p = runInProcess(args());
  await until('watch', () => fake.watcherCount() === 1);
  const name = [...fake.csrs.keys()][0]!;
  fake.deleteCsr(name);
  await until('recreated CSR', () => fake.csrs.has(name) && fake.watcherCount() === 1, 30_000);
  fake.approve(name);
  const res = await p;
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /was deleted; requesting again/);
});

t.test('watch dropped, then ended after compaction (410): no new CSR, still issued', async (t) => {
  const { fake, args } = await fakeNode(t, { autoApprove: false });
  const p = runInProcess(args('-v', '3'));
  await until('watch', () => fake.watcherCount() === 1);
  fake.dropWatches();
  await until('re-watch after drop', () => fake.watcherCount() === 1, 30_000);
  fake.compact();
  fake.endWatches();
  await until('re-watch after 410', () => fake.watcherCount() === 1 && fake.requests.filter((r) => r.path.includes('watch=1')).length >= 4, 30_000);
  fake.approve([...fake.csrs.keys()][0]!);
  const res = await p;
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /lost the watch/);
  t.match(res.stderr, /410 Gone/);
  t.equal(fake.requests.filter((r) => r.method === 'POST').length, 1);
});

t.test('server down at start, then up', async (t) => {
  const { fake, args } = await fakeNode(t);
  await fake.down();
  const p = runInProcess(args());
  await new Promise((r) => setTimeout(r, 2500));
  await fake.up();
  const res = await p;
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /could not get a certificate; retrying.*ECONNREFUSED/);
});

t.test('transient 500s on create are retried', async (t) => {
  const { fake, args } = await fakeNode(t);
  fake.failNext(2, 500, 'POST');
  const res = await runInProcess(args('-v', '1'));
  t.equal(res.code, 0, res.stderr);
  t.equal((res.stderr.match(/DEBUG attempt failed/g) ?? []).length, 2, 'two failed attempts');
  t.equal((res.stderr.match(/could not get a certificate; retrying/g) ?? []).length, 1, 'the same failure is told once');
  t.match(res.stderr, /recovered: a valid certificate is on disk again failedAttempts=2/);
});

t.test('a rejected token is a clear error naming what to do', async (t) => {
  const { fake, dir, args } = await fakeNode(t);
  await fake.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), 'qqqqqq.0123456789abcdef');
  const res = await runInProcess(args());
  t.equal(res.code, 2);
  t.match(res.stderr, /bootstrap credentials in .*bootstrap.kubeconfig were rejected \(401 Unauthorized\).*Create a new bootstrap token/);
  t.notMatch(res.stderr, /0123456789abcdef/);
});

t.test('a token whose group may not be auto-approved stays pending with the approve command', async (t) => {
  const { fake, dir, args } = await fakeNode(t);
  await fake.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), 'zzzzzz.0123456789abcdef', { tokenFile: true });
  const res = await runInProcess(args('--approval-timeout', '1500ms'));
  t.equal(res.code, 1);
  t.match(res.stderr, /approve it with: kubectl certificate approve node-csr-/);
  t.equal([...fake.csrs.values()][0]?.spec.username, 'system:bootstrap:zzzzzz', 'tokenFile was used');
});

t.test('wrong CA: one clear error, no endless retry under --once', async (t) => {
  const { dir, args } = await fakeNode(t);
  const other = await FakeApiServer.start({ tokens: TOKENS });
  t.teardown(() => other.stop());
  const file = path.join(dir, 'bootstrap.kubeconfig');
  const text = await fs.readFile(file, 'utf8');
  await fs.writeFile(file, text.replace(/certificate-authority-data: .*/, `certificate-authority-data: ${Buffer.from(other.caPem).toString('base64')}`));
  const res = await runInProcess(args());
  t.equal(res.code, 1);
  t.match(res.stderr, /TLS verification failed .*check certificate-authority/);
});

t.test('insecure-skip-tls-verify is refused unless allowed', async (t) => {
  const { dir, args } = await fakeNode(t);
  const file = path.join(dir, 'bootstrap.kubeconfig');
  const text = await fs.readFile(file, 'utf8');
  await fs.writeFile(file, text.replace(/certificate-authority-data: .*/, 'insecure-skip-tls-verify: true'));
  const refused = await runInProcess(args());
  t.equal(refused.code, 2);
  t.match(refused.stderr, /insecure-skip-tls-verify is set; add the cluster CA .* or pass --allow-insecure-bootstrap/);
  const allowed = await runInProcess(args('--allow-insecure-bootstrap'));
  t.equal(allowed.code, 0, allowed.stderr);
});

t.test('a malformed bootstrap kubeconfig: one line, exit 2, nothing written', async (t) => {
  const { dir, args, pki } = await fakeNode(t);
  await fs.writeFile(path.join(dir, 'bootstrap.kubeconfig'), 'clusters: [\n');
  const res = await runInProcess(args());
  t.equal(res.code, 2);
  t.equal(res.stderr.trim().split('\n').length, 1);
  t.match(res.stderr, /bootstrap kubeconfig is unusable: .*bootstrap.kubeconfig: not valid YAML/);
  t.same(await listDir(pki), []);
});

t.test('RSA and custom identities', async (t) => {
  const { fake, args } = await fakeNode(t, { autoApprove: false });
  const p = runInProcess(args('--key-algorithm', 'rsa-2048', '--signer-name', 'kubernetes.io/kube-apiserver-client', '--common-name', 'haproxy',
    '--organization', 'lb', '--file-prefix', 'haproxy-client', '--expiration-seconds', '3600'));
  await until('watch', () => fake.watcherCount() === 1);
  const csr = [...fake.csrs.values()][0]!;
  t.same(csr.spec.usages, ['digital signature', 'client auth', 'key encipherment']);
  t.equal(csr.spec.expirationSeconds, 3600);
  fake.approve(csr.metadata.name!);
  const res = await p;
  t.equal(res.code, 0, res.stderr);
});

t.test('daemon: logs the next rotation, stops cleanly on SIGTERM', async (t) => {
  const { args } = await fakeNode(t);
  const p = new CliProcess(args().filter((a) => a !== '--once'));
  await p.waitFor(/next rotation scheduled/);
  t.equal(await p.stop('SIGTERM'), 0);
  t.match(p.output, /stopped/);
});
