import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { CertStore, timestamp } from '../../src/node/store.js';
import { FakeApiServer } from '../support/fakeapi.js';
import { listDir, tempDir } from '../support/helpers.js';

const fake = await FakeApiServer.start();
t.teardown(() => fake.stop());

async function pair(): Promise<{ certPem: string; keyPem: string }> {
  return fake.issueClientCert('system:node:n1', ['system:nodes']);
}

t.test('timestamp is kubelet\'s local-time format', async (t) => {
  t.equal(timestamp(new Date(2026, 0, 2, 3, 4, 5)), '2026-01-02-03-04-05');
});

t.test('update writes chain then key 0600 and an absolute symlink', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(path.join(dir, 'pki'), 'kubelet-client');
  await store.recover();
  t.equal(await store.current(), undefined, 'nothing yet');
  const p = await pair();
  const file = await store.update(p.certPem, p.keyPem, new Date(2026, 4, 6, 7, 8, 9));
  t.equal(file, path.join(dir, 'pki', 'kubelet-client-2026-05-06-07-08-09.pem'));
  t.equal((await fs.stat(file)).mode & 0o777, 0o600);
  const text = await fs.readFile(file, 'utf8');
  t.ok(text.indexOf('CERTIFICATE') < text.indexOf('PRIVATE KEY'), 'cert chain before key');
  const link = await fs.readlink(store.currentPath);
  t.ok(path.isAbsolute(link), 'absolute target');
  t.equal(link, file);
  const cur = await store.current();
  t.equal(cur?.file, file);
  t.equal(cur?.chain[0]?.subject.commonName, 'system:node:n1');
  t.same(await listDir(path.join(dir, 'pki')), ['kubelet-client-2026-05-06-07-08-09.pem', 'kubelet-client-current.pem'], 'no temp files left');
});

t.test('refuses to write what it cannot read back', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'x');
  await t.rejects(store.update('not a cert', 'not a key'), { message: /expected certificate\(s\) followed by a private key/ });
  t.same(await listDir(dir), []);
});

t.test('recover: a leftover -updated.pem symlink becomes -current.pem', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'kubelet-client');
  const p = await pair();
  const file = await store.update(p.certPem, p.keyPem);
  await fs.rename(store.currentPath, path.join(dir, 'kubelet-client-updated.pem'));
  await store.recover();
  t.equal(await fs.readlink(store.currentPath), file);
  t.same(await listDir(dir), [path.basename(file), 'kubelet-client-current.pem']);
});

t.test('recover: a regular-file -current.pem is migrated to a timestamped file', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'kubelet-client');
  const p = await pair();
  await fs.writeFile(store.currentPath, p.certPem + p.keyPem, { mode: 0o600 });
  await store.recover();
  const st = await fs.lstat(store.currentPath);
  t.ok(st.isSymbolicLink(), 'now a symlink');
  const cur = await store.current();
  t.match(path.basename(cur!.file), /^kubelet-client-\d{4}(-\d{2}){5}\.pem$/);
  t.equal(cur?.chain[0]?.subject.commonName, 'system:node:n1');
  // the next update works (kubelet fails here for ever)
  const q = await pair();
  await store.update(q.certPem, q.keyPem, new Date(Date.now() + 5000));
  t.equal((await store.current())?.chain.length, 1);
});

t.test('recover: a folder at -current.pem is a clear error', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'kubelet-client');
  await fs.mkdir(store.currentPath);
  await t.rejects(store.recover(), { message: /expected a symlink to the current certificate/ });
});

t.test('a dangling symlink counts as no certificate; a corrupt target is an error', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'kubelet-client');
  await fs.symlink(path.join(dir, 'gone.pem'), store.currentPath);
  t.equal(await store.current(), undefined);
  await fs.writeFile(path.join(dir, 'gone.pem'), 'garbage');
  await t.rejects(store.current(), { message: /gone.pem: expected certificate\(s\) followed by a private key/ });
});

t.test('prune keeps the newest N and never the current one', async (t) => {
  const dir = await tempDir(t);
  const store = new CertStore(dir, 'kubelet-client', { keep: 2 });
  const p = await pair();
  const files: string[] = [];
  for (let i = 0; i < 4; i++) files.push(await store.update(p.certPem, p.keyPem, new Date(2026, 0, 1, 0, 0, i)));
  await fs.writeFile(path.join(dir, 'unrelated.pem'), 'x');
  const removed = await store.prune();
  t.same(removed, files.slice(0, 2));
  t.same(await listDir(dir), ['kubelet-client-2026-01-01-00-00-02.pem', 'kubelet-client-2026-01-01-00-00-03.pem', 'kubelet-client-current.pem', 'unrelated.pem']);
  // point current at an old file (a rollback by hand): it survives pruning
  const again = await store.update(p.certPem, p.keyPem, new Date(2026, 0, 1, 0, 0, 9));
  await fs.rm(store.currentPath);
  await fs.symlink(path.join(dir, 'kubelet-client-2026-01-01-00-00-02.pem'), store.currentPath);
  await store.prune();
  t.ok((await listDir(dir)).includes('kubelet-client-2026-01-01-00-00-02.pem'));
  t.ok((await listDir(dir)).includes(path.basename(again)));
});

t.test('leftovers of a killed write are removed at start, and only this identity\'s', async (t) => {
  const dir = await tempDir(t);
  const hex = 'a1b2c3d4e5f6';
  const mine = [`..kubelet-client.state.json.tmp-${hex}`, `.kubelet-client-2026-01-01-00-00-00.pem.tmp-${hex}`, `.kubelet-client-current.pem.tmp-${hex}`, `.kubelet-client.key.tmp.tmp-${hex}`, `.kubeconfig.tmp-${hex}`];
  const theirs = [`.kubelet-client-foo-current.pem.tmp-${hex}`, `..haproxy.state.json.tmp-${hex}`, `.kubelet-client.state.json.tmp-${hex}`, `.kubeconfig-haproxy.tmp-${hex}`, 'kubelet-client-current.pem.tmp-not-ours'];
  for (const f of [...mine, ...theirs]) await fs.writeFile(path.join(dir, f), 'x');
  await new CertStore(dir, 'kubelet-client').removeLeftovers(path.join(dir, 'kubeconfig'));
  t.same((await fs.readdir(dir)).sort(), [...theirs].sort());
});
