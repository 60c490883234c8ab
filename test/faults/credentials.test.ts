// Fault suite: what the cluster does to a CSR (denies, deletes, never approves it) and to the
// credentials (a token that expired or was deleted, a certificate that expired while the machine
// was off, or one that is not valid yet), on the real control plane.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { csrsFor, makeNode, startPlane, startTlsboot, until, type Node } from '../support/e2e.js';
import { currentKey, expectHealthy, once, PEM, whoami } from './support.js';

const cp = await startPlane(t);
const token = await cp.createToken();
await cp.allowCsrCreation('system:bootstrappers:manual');
const manual = await cp.createToken({ groups: ['system:bootstrappers:manual'] });
const DAY = 86_400_000;
const csrName = async (node: Node): Promise<string> =>
  until(`a CSR for ${node.name}`, async () => (await csrsFor(cp, `system:node:${node.name}`))[0]?.metadata.name, 60_000);

/** Point the node at another token (a new bootstrap kubeconfig, as an operator would write). */
const useToken = (node: Node, value: string): Promise<string> => cp.writeBootstrapKubeconfig(node.bootstrap, value);

t.test('CSR denied: exit 3 with the reason; with a token that is approved, the next run gets a certificate', async (t) => {
  const node = await makeNode(t, cp, 'denied', manual);
  const run = once(node);
  await cp.kubectl(['certificate', 'deny', await csrName(node)]);
  const r = await run;
  t.equal(r.code, 3, r.output);
  t.match(r.output, /was denied \(reason: KubectlDeny/);
  await t.rejects(fs.stat(path.join(node.pki, 'kubelet-client.key.tmp')), 'the spoiled bootstrap key is gone');
  await useToken(node, token.value);
  t.equal((await once(node)).code, 0);
  t.equal(await expectHealthy(t, cp, node), 2, 'the denied CSR, and one new CSR from a new key');
});

t.test('CSR deleted while it waits: made again under the same name, then approved', async (t) => {
  const node = await makeNode(t, cp, 'deleted', manual);
  const run = once(node);
  const name = await csrName(node);
  await cp.kubectl(['delete', 'csr', name]);
  await until('the CSR made again', async () => ((await csrsFor(cp, 'system:node:deleted')).some((c) => c.metadata.name === name) ? true : undefined), 60_000);
  await cp.kubectl(['certificate', 'approve', name]);
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.match(r.output, /was deleted/);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('CSR never approved under --once: exit 1 after --approval-timeout; the next run finds the same CSR', async (t) => {
  const node = await makeNode(t, cp, 'never-approved', manual);
  const first = await once(node, '--approval-timeout', '3s');
  t.equal(first.code, 1, first.output);
  t.match(first.output, /was not approved within 3 s; approve it with: kubectl certificate approve node-csr-/);
  const name = await csrName(node);
  const second = once(node);
  await new Promise((r) => setTimeout(r, 2000));
  await cp.kubectl(['certificate', 'approve', name]);
  const r = await second;
  t.equal(r.code, 0, r.output);
  t.match(r.output, /reusing the certificate signing request made earlier/);
  t.equal(await expectHealthy(t, cp, node), 1, 'one CSR across both runs');
});

t.test('CSR never approved in the daemon: three approval timeouts still leave one bootstrap CSR', async (t) => {
  const node = await makeNode(t, cp, 'never-approved-daemon', manual);
  const daemon = startTlsboot(t, node.args('--approval-timeout', '2s', '-v', '1'));
  await daemon.waitFor(/(was not approved within 2 s[\s\S]*){3}/, 60_000);
  await cp.kubectl(['certificate', 'approve', await csrName(node)]);
  await daemon.waitFor(/next rotation scheduled/, 60_000);
  t.equal(await daemon.stop(), 0);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('an expired token: exit 2 naming the file and the fix; a new token works', async (t) => {
  const expired = await cp.createToken({ expiration: new Date(Date.now() - 60_000) });
  const node = await makeNode(t, cp, 'expired-token', expired);
  const r = await once(node);
  t.equal(r.code, 2, r.output);
  t.match(r.output, new RegExp(`the bootstrap credentials in ${node.bootstrap} were rejected \\(401 Unauthorized\\).*tlsboot token create`));
  await useToken(node, token.value);
  t.equal((await once(node)).code, 0);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('a deleted token in the daemon: retried until the operator puts a new one in place', async (t) => {
  const gone = await cp.createToken();
  await cp.deleteToken(gone.id);
  const node = await makeNode(t, cp, 'deleted-token', gone);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/were rejected \(401/, 60_000);
  await useToken(node, token.value);
  await daemon.waitFor(/next rotation scheduled/, 90_000);
  t.equal(await daemon.stop(), 0);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('the token deleted after bootstrap: rotation needs only the certificate', async (t) => {
  const own = await cp.createToken();
  const node = await makeNode(t, cp, 'token-gone-rotation', own);
  t.equal((await once(node)).code, 0);
  await cp.deleteToken(own.id);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/authenticating with the current one[\s\S]*client certificate issued and written/, 60_000);
  t.equal(await daemon.stop(), 0);
  t.equal(await expectHealthy(t, cp, node), 2);
});

/** Replace the node's current certificate by one for the same key with other dates. */
async function redate(node: Node, start: Date, end: Date): Promise<void> {
  const key = await currentKey(node);
  const cert = await cp.signClientCertificate(key, `/O=system:nodes/CN=system:node:${node.name}`, start, end);
  const target = path.resolve(node.pki, await fs.readlink(path.join(node.pki, PEM)));
  await fs.writeFile(target, cert + key, { mode: 0o600 });
}

t.test('the certificate expired while the machine was off: back to the token, a new certificate', async (t) => {
  const node = await makeNode(t, cp, 'expired-while-off', token);
  t.equal((await once(node)).code, 0);
  await redate(node, new Date(Date.now() - 400 * DAY), new Date(Date.now() - 35 * DAY));
  const r = await once(node);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /the client certificate has expired; falling back to the bootstrap kubeconfig/);
  t.equal(await expectHealthy(t, cp, node), 2);
});

t.test('an expired certificate and a deleted token: exit 2 with the fix, the files left as they are; a new token recovers', async (t) => {
  const own = await cp.createToken();
  const node = await makeNode(t, cp, 'expired-no-token', own);
  t.equal((await once(node)).code, 0);
  await redate(node, new Date(Date.now() - 400 * DAY), new Date(Date.now() - DAY));
  await cp.deleteToken(own.id);
  await new Promise((r) => setTimeout(r, 11_000)); // kube-apiserver caches token answers ~10 s
  const before = await fs.readFile(path.join(node.pki, PEM), 'utf8');
  const r = await once(node);
  t.equal(r.code, 2, r.output);
  t.match(r.output, /were rejected \(401 Unauthorized\): the token has expired or was deleted/);
  t.equal(await fs.readFile(path.join(node.pki, PEM), 'utf8'), before, 'nothing on disk was touched');
  await useToken(node, token.value);
  t.equal((await once(node)).code, 0);
  t.equal(await expectHealthy(t, cp, node), 2);
});

t.test('a certificate on disk that is not valid yet (issued by a clock far ahead): not trusted, a new one is made', async (t) => {
  const node = await makeNode(t, cp, 'not-yet-valid', token);
  t.equal((await once(node)).code, 0);
  await redate(node, new Date(Date.now() + 30 * DAY), new Date(Date.now() + 400 * DAY));
  const r = await once(node);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /the client certificate is not valid yet/);
  t.equal(await expectHealthy(t, cp, node), 2);
});

t.test('a rotation that is never approved: one CSR across three approval timeouts and a restart', async (t) => {
  await cp.allowCsrCreation('tlsboot:lb');
  const node = await makeNode(t, cp, 'lb-rot', manual);
  const args = (...extra: string[]): string[] => node.args('--signer-name', 'kubernetes.io/kube-apiserver-client', '--common-name', 'lb-rot',
    '--organization', 'tlsboot:lb', '--usage', 'digital signature', '--usage', 'client auth', ...extra);
  const mine = async (): Promise<string[]> => (await csrsFor(cp, 'lb-rot')).map((c) => c.metadata.name ?? '');
  const boot = startTlsboot(t, args('--once'));
  await cp.kubectl(['certificate', 'approve', (await until('the bootstrap CSR', async () => (await mine())[0]))!]);
  t.equal(await boot.exited, 0, boot.output);

  const daemon = startTlsboot(t, args('--approval-timeout', '2s', '-v', '1'));
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/(was not approved within 2 s[\s\S]*){3}/, 60_000);
  t.equal(await daemon.stop(), 0);
  const again = startTlsboot(t, args('--approval-timeout', '2s'));
  await again.waitFor(/next rotation scheduled/);
  again.child.kill('SIGUSR1');
  await again.waitFor(/reusing the certificate signing request made earlier with the same key/, 30_000);
  const names = await mine();
  t.equal(names.length, 2, `one bootstrap CSR and one rotation CSR, after 3 timeouts and a restart: ${names.join(' ')}`);
  await cp.kubectl(['certificate', 'approve', names.find((n) => n.startsWith('csr-'))!]);
  await again.waitFor(/client certificate issued and written/, 60_000);
  t.equal(await again.stop(), 0);
  t.equal(await whoami(cp, node.kubeconfig), 'lb-rot', 'the rotated certificate authenticates');
  t.equal((await mine()).length, 2);
});
