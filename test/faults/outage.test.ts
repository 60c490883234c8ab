// Fault suite: etcd, kube-apiserver or kube-controller-manager stops at each phase of a
// bootstrap or a rotation (before the CSR is created, while it waits, between issue and write).
// SIGKILL, as a power cut would. The scenarios share one control plane and run one at a time.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { csrsFor, makeNode, startPlane, startTlsboot, until, type Node } from '../support/e2e.js';
import type { CliProcess } from '../support/helpers.js';
import { expectHealthy, once, PEM, whoami } from './support.js';

const cp = await startPlane(t);
const token = await cp.createToken();
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cn = (node: Node): string => `system:node:${node.name}`;
const csrExists = (node: Node): Promise<boolean> => until(`a CSR for ${node.name}`, async () => (await csrsFor(cp, cn(node))).length > 0, 60_000);

/** Bring the components back as they were, whatever a failed scenario left stopped. */
async function restore(): Promise<void> {
  for (const [name, start] of [['etcd', () => cp.startEtcd()], ['kube-apiserver', () => cp.startApiserver()], ['kube-controller-manager', () => cp.startControllerManager()]] as const) {
    if (!cp.running(name)) await start();
  }
}
t.afterEach(restore);

t.test('kube-apiserver down before the CSR is created', async (t) => {
  const node = await makeNode(t, cp, 'api-down-before', token);
  await cp.stopProcess('kube-apiserver', 'SIGKILL');
  const run = once(node);
  await pause(6000);
  await cp.startApiserver();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.match(r.output, /cannot reach/);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('kube-apiserver down while the CSR waits for approval', async (t) => {
  const node = await makeNode(t, cp, 'api-down-waiting', token);
  await cp.stopProcess('kube-controller-manager');
  const run = once(node);
  await csrExists(node);
  await cp.stopProcess('kube-apiserver', 'SIGKILL');
  await pause(4000);
  await cp.startApiserver();
  await cp.startControllerManager();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.equal(await expectHealthy(t, cp, node), 1, 'the same CSR was found again');
});

t.test('kube-apiserver down between issue and write (tlsboot frozen while the CSR is signed)', async (t) => {
  const node = await makeNode(t, cp, 'api-down-issued', token);
  await cp.stopProcess('kube-controller-manager');
  const p = startTlsboot(t, node.args('--once', '--retry-timeout', '90s'));
  await csrExists(node);
  p.child.kill('SIGSTOP');
  await cp.startControllerManager();
  await until('the certificate is issued', async () => (await csrsFor(cp, cn(node)))[0]?.status?.certificate !== undefined, 60_000);
  await cp.stopProcess('kube-apiserver', 'SIGKILL');
  p.child.kill('SIGCONT');
  await pause(3000);
  await cp.startApiserver();
  t.equal(await p.exited, 0, p.output);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('kube-controller-manager down before the CSR is created, back later', async (t) => {
  const node = await makeNode(t, cp, 'kcm-down', token);
  await cp.stopProcess('kube-controller-manager', 'SIGKILL');
  const run = once(node);
  await csrExists(node);
  await pause(3000);
  await cp.startControllerManager();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('kube-controller-manager killed while the CSR waits, then started again', async (t) => {
  const node = await makeNode(t, cp, 'kcm-killed-waiting', token);
  await cp.stopProcess('kube-controller-manager');
  const run = once(node);
  await csrExists(node);
  await cp.startControllerManager();
  await cp.stopProcess('kube-controller-manager', 'SIGKILL');
  await pause(2000);
  await cp.startControllerManager();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('etcd down before the CSR is created', async (t) => {
  const node = await makeNode(t, cp, 'etcd-down-before', token);
  await cp.stopProcess('etcd', 'SIGKILL');
  const run = once(node);
  await pause(5000);
  await cp.startEtcd();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('etcd down while the CSR waits for approval', async (t) => {
  const node = await makeNode(t, cp, 'etcd-down-waiting', token);
  await cp.stopProcess('kube-controller-manager');
  const run = once(node);
  await csrExists(node);
  await cp.stopProcess('etcd', 'SIGKILL');
  await pause(4000);
  await cp.startEtcd();
  await cp.startControllerManager();
  const r = await run;
  t.equal(r.code, 0, r.output);
  t.equal(await expectHealthy(t, cp, node), 1);
});

/** A daemon that has its certificate; SIGUSR1 starts a rotation. */
async function daemonWithCertificate(t: Test, name: string): Promise<{ node: Node; daemon: CliProcess; first: string }> {
  const node = await makeNode(t, cp, name, token);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/);
  return { node, daemon, first: await fs.readlink(path.join(node.pki, PEM)) };
}

t.test('kube-apiserver down during a rotation: the current certificate stays in place and valid', async (t) => {
  const { node, daemon, first } = await daemonWithCertificate(t, 'api-down-rotation');
  await cp.stopProcess('kube-apiserver', 'SIGKILL');
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/rotating now on request[\s\S]*could not get a certificate; retrying/);
  t.equal(await fs.readlink(path.join(node.pki, PEM)), first, 'untouched while the server is down');
  await cp.startApiserver();
  t.equal(await whoami(cp, node.kubeconfig), 'system:node:api-down-rotation', 'the old certificate still authenticates');
  await daemon.waitFor(/client certificate issued and written[\s\S]*client certificate issued and written/, 90_000);
  t.not(await fs.readlink(path.join(node.pki, PEM)), first, 'rotated once the server was back');
  t.equal(await daemon.stop(), 0);
  t.ok(await expectHealthy(t, cp, node) >= 2, 'the bootstrap CSR and the rotation CSR');
});

t.test('kube-controller-manager down during a rotation: rotated once it is back', async (t) => {
  const { node, daemon, first } = await daemonWithCertificate(t, 'kcm-down-rotation');
  await cp.stopProcess('kube-controller-manager', 'SIGKILL');
  daemon.child.kill('SIGUSR1');
  await until('the rotation CSR', async () => (await csrsFor(cp, cn(node))).length === 2, 60_000);
  await pause(2000);
  t.equal(await fs.readlink(path.join(node.pki, PEM)), first);
  await cp.startControllerManager();
  await daemon.waitFor(/client certificate issued and written[\s\S]*client certificate issued and written/, 90_000);
  t.equal(await daemon.stop(), 0);
  t.equal(await expectHealthy(t, cp, node), 2, 'one bootstrap CSR, one rotation CSR');
});
