// Rotation scenarios against the fake API server; real twins in test/e2e.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Agent } from '../../src/node/agent.js';
import { buildIdentity } from '../../src/node/identity.js';
import { createLogger } from '../../src/base/log.js';
import { renderNodeKubeconfig } from '../../src/kube/kubeconfig.js';
import { fakeNode } from '../support/fakenode.js';
import { CliProcess, listDir, runInProcess } from '../support/helpers.js';

const pems = async (pki: string): Promise<string[]> => (await listDir(pki)).filter((f) => /-\d{2}\.pem$/.test(f));

t.test('a due certificate is rotated with mutual TLS, a new key, and a name derived from it', async (t) => {
  // 30 s signing duration: NotBefore is backdated 5 min, so 70-90 % of the 5.5 min lifetime
  // has passed before the certificate is issued: it is due at once.
  const { fake, pki, args } = await fakeNode(t, { signingDurationSeconds: 30 });
  t.equal((await runInProcess(args())).code, 0);
  const first = await fs.readlink(path.join(pki, 'kubelet-client-current.pem'));
  await new Promise((r) => setTimeout(r, 1100)); // a new second: a new file name
  const res = await runInProcess(args());
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /rotating the client certificate, authenticating with the current one/);
  const csrs = [...fake.csrs.values()];
  t.equal(csrs.length, 2);
  const rot = csrs[1]!;
  t.match(rot.metadata.name, /^csr-[A-Za-z0-9_-]{43}$/, 'kubelet\'s prefix, and the digest of key, subject and usages');
  t.equal(rot.metadata.generateName, undefined);
  t.equal(rot.spec.username, 'system:node:node-1', 'authenticated with its certificate');
  t.ok(rot.spec.groups?.includes('system:nodes'));
  t.not(rot.spec.request, csrs[0]!.spec.request, 'a new key');
  const second = await fs.readlink(path.join(pki, 'kubelet-client-current.pem'));
  t.not(second, first, 'symlink moved');
  t.same(await pems(pki), [path.basename(first), path.basename(second)].sort());
});

t.test('pruning keeps --keep files', async (t) => {
  const { pki, args } = await fakeNode(t, { signingDurationSeconds: 30 });
  for (let i = 0; i < 4; i++) {
    t.equal((await runInProcess(args('--keep', '2'))).code, 0);
    await new Promise((r) => setTimeout(r, 1050));
  }
  t.equal((await pems(pki)).length, 2);
});

t.test('an expired certificate falls back to the bootstrap token', async (t) => {
  const { fake, pki, kubeconfig, args } = await fakeNode(t);
  const old = await fake.issueClientCert('system:node:node-1', ['system:nodes'], 3600_000, new Date(Date.now() - 7200_000));
  await fs.mkdir(pki, { recursive: true });
  await fs.writeFile(path.join(pki, 'kubelet-client-2020-01-01-00-00-00.pem'), old.certPem + old.keyPem, { mode: 0o600 });
  await fs.symlink(path.join(pki, 'kubelet-client-2020-01-01-00-00-00.pem'), path.join(pki, 'kubelet-client-current.pem'));
  await fs.writeFile(kubeconfig, renderNodeKubeconfig({ server: fake.url, caPem: fake.caPem, insecureSkipTlsVerify: false, pemPath: path.join(pki, 'kubelet-client-current.pem') }));
  const res = await runInProcess(args());
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /the client certificate has expired; falling back to the bootstrap kubeconfig/);
  const [csr] = [...fake.csrs.values()];
  t.equal(csr?.spec.username, 'system:bootstrap:abcdef');
  t.match(csr?.metadata.name, /^node-csr-/);
});

t.test('an expired certificate and no bootstrap kubeconfig: says what to do', async (t) => {
  const { fake, pki, kubeconfig, dir } = await fakeNode(t);
  const old = await fake.issueClientCert('system:node:node-1', ['system:nodes'], 3600_000, new Date(Date.now() - 7200_000));
  await fs.mkdir(pki, { recursive: true });
  await fs.writeFile(path.join(pki, 'kubelet-client-current.pem'), old.certPem + old.keyPem);
  await fs.writeFile(kubeconfig, renderNodeKubeconfig({ server: fake.url, caPem: fake.caPem, insecureSkipTlsVerify: false, pemPath: path.join(pki, 'kubelet-client-current.pem') }));
  const res = await runInProcess(['run', '--once', '--kubeconfig', kubeconfig, '--bootstrap-kubeconfig', path.join(dir, 'gone'), '--cert-dir', pki, '--node-name', 'node-1']);
  t.equal(res.code, 2);
  t.match(res.stderr, /no valid client certificate in .*kubeconfig, and the bootstrap kubeconfig is unusable: .*gone: kubeconfig not found/);
});

t.test('a regular-file -current.pem is migrated and used, no CSR', async (t) => {
  const { fake, pki, kubeconfig, args } = await fakeNode(t);
  const cur = await fake.issueClientCert('system:node:node-1', ['system:nodes'], 86400_000);
  await fs.mkdir(pki, { recursive: true });
  await fs.writeFile(path.join(pki, 'kubelet-client-current.pem'), cur.certPem + cur.keyPem, { mode: 0o600 });
  await fs.writeFile(kubeconfig, renderNodeKubeconfig({ server: fake.url, caPem: fake.caPem, insecureSkipTlsVerify: false, pemPath: path.join(pki, 'kubelet-client-current.pem') }));
  const res = await runInProcess(args());
  t.equal(res.code, 0, res.stderr);
  t.match(res.stderr, /migrated a regular file/);
  t.ok((await fs.lstat(path.join(pki, 'kubelet-client-current.pem'))).isSymbolicLink());
  t.equal(fake.csrs.size, 0);
});

t.test('a certificate for another key is rejected and nothing is written', async (t) => {
  const { fake, pki, kubeconfig, bootstrap } = await fakeNode(t);
  let served = 0;
  fake.issueHook = async (_csr, pem) => {
    served++;
    return served === 1 ? (await fake.issueClientCert('system:node:node-1', ['system:nodes'])).certPem : pem;
  };
  const lines: string[] = [];
  const agent = new Agent({
    kubeconfig, bootstrapKubeconfig: bootstrap, certDir: pki, identity: buildIdentity('node-1'),
    log: createLogger({ write: (l) => lines.push(l) }), rand: () => 0,
  });
  const seen: string[][] = [];
  const ac = new AbortController();
  const state = await Promise.race([
    agent.ensure(ac.signal),
    (async () => {
      while (!lines.some((l) => l.includes('rejected, nothing written'))) await new Promise((r) => setTimeout(r, 10));
      seen.push(await listDir(pki));
      return new Promise<never>(() => undefined);
    })(),
  ]);
  t.match(lines.join('\n'), /it is for a different public key than the one in our request/);
  t.same(seen[0]?.filter((f) => f.endsWith('.pem')), [], 'no certificate written after the bad answer');
  t.equal(served, 2, 'asked again');
  t.ok(state.file.startsWith(pki));
  t.equal(fake.csrs.size, 2, 'the rejected CSR was not reused: fresh key, fresh name');
  ac.abort();
});

t.test('daemon rotates when due, and backs off when the signer only hands out due certificates', async (t) => {
  const { fake, args } = await fakeNode(t, { signingDurationSeconds: 30 });
  const p = new CliProcess(args().filter((a) => a !== '--once'));
  t.teardown(() => p.stop('SIGKILL'));
  await p.waitFor(/client certificate issued and written[\s\S]*already due for rotation/, 30_000);
  const backoff = Number(/already due for rotation.*retryInMs=(\d+)/.exec(p.output)?.[1]);
  t.ok(backoff >= 1000 && backoff <= 4000, `backs off instead of rotating at once: ${backoff} ms`);
  await p.waitFor(/rotating the client certificate[\s\S]*rotating the client certificate/, 30_000);
  const count = fake.csrs.size;
  t.ok(count >= 2 && count <= 4, `a bounded number of CSRs (${count})`);
  t.equal(await p.stop('SIGTERM'), 0);
});

t.test('SIGUSR1 rotates now', async (t) => {
  const { fake, args } = await fakeNode(t);
  const p = new CliProcess(args().filter((a) => a !== '--once'));
  t.teardown(() => p.stop('SIGKILL'));
  await p.waitFor(/next rotation scheduled/);
  p.child.kill('SIGUSR1');
  await p.waitFor(/rotating now on request[\s\S]*client certificate issued and written/);
  t.equal(fake.csrs.size, 2);
  t.equal([...fake.csrs.values()][1]?.spec.username, 'system:node:node-1');
  t.equal(await p.stop('SIGTERM'), 0);
});
