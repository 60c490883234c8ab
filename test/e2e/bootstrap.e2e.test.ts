// tlsboot against a real kube-apiserver + kube-controller-manager (v1.36, built from Go
// modules by test/controlplane/build.sh) and beside the real kubelet bootstrap code.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse } from 'yaml';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { digestedName, parseCsrPem } from '../../src/pki/csr.js';
import { x509 } from '../../src/pki/x509.js';
import { csrsBy, csrsFor, currentTarget, makeNode, startPlane, startTlsboot, until } from '../support/e2e.js';
import { listDir, runCli, tempDir, type CliProcess } from '../support/helpers.js';

const run = promisify(execFile);
const cp = await startPlane(t);
const token = await cp.createToken();
// A group that may create CSRs (node-bootstrapper) but has no auto-approve binding.
await cp.allowCsrCreation('system:bootstrappers:manual');
const manualToken = await cp.createToken({ groups: ['system:bootstrappers:manual'] });
/** The CSR tlsboot waits on stays Pending for `ms`, then `kubectl certificate approve` lets it finish. */
async function pendingUntilApproved(p: CliProcess, ms: number, why: string): Promise<number> {
  const name = (await p.waitFor(/approve="kubectl certificate approve (node-csr-[\w-]+)"/))[1]!;
  await new Promise((r) => setTimeout(r, ms));
  const [csr] = await csrsBy(cp, (c) => c.metadata.name === name);
  if ((csr?.status?.conditions ?? []).length > 0) throw new Error(`${name} did not stay Pending (${why}): ${JSON.stringify(csr?.status?.conditions)}`);
  await cp.kubectl(['certificate', 'approve', name]);
  return p.exited;
}
const requestOf = (c: CsrObject): string => Buffer.from(c.spec.request, 'base64').toString();
const byUser = (u: string) => (c: CsrObject): boolean => c.spec.username === u;

t.test('the control plane reports its real release', { skip: cp.external ? 'an external cluster has its own version' : false }, async (t) => {
  const v = JSON.parse(await cp.kubectl(['version', '-o', 'json'])) as { serverVersion: { gitVersion: string } };
  t.equal(v.serverVersion.gitVersion, 'v1.36.3');
});

t.test('fresh bootstrap is auto-approved by the real KCM; kubectl accepts the kubeconfig', async (t) => {
  const node = await makeNode(t, cp, 'node-fresh', token);
  const res = await runCli(node.args('--once'));
  t.equal(res.code, 0, res.output);
  const files = await listDir(node.pki);
  t.match(files, [/^kubelet-client-\d{4}(-\d{2}){5}\.pem$/, 'kubelet-client-current.pem']);
  t.equal(files.length, 2);
  t.equal(await currentTarget(node), path.join(node.pki, files[0]!));
  const who = JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig: node.kubeconfig })) as { status: { userInfo: { username: string; groups: string[] } } };
  t.equal(who.status.userInfo.username, 'system:node:node-fresh');
  t.ok(who.status.userInfo.groups.includes('system:nodes'));
  const [csr] = await csrsBy(cp, byUser(`system:bootstrap:${token.id}`));
  t.same(csr?.status?.conditions?.map((c) => [c.type, c.reason]), [['Approved', 'AutoApproved']]);
  t.notMatch(res.output, new RegExp(token.secret), 'token secret not logged');
});

t.test('kubelet fidelity: tlsboot\'s CSR and kubelet\'s own agree', async (t) => {
  const kdir = await tempDir(t, 'kubelet-ref-');
  const kbootstrap = await cp.writeBootstrapKubeconfig(path.join(kdir, 'bootstrap.kubeconfig'), token.value);
  const t0 = Date.now();
  await run(path.join(cp.binDir, 'kubelet-bootstrap'), ['--kubeconfig', path.join(kdir, 'kubeconfig'), '--bootstrap-kubeconfig', kbootstrap,
    '--cert-dir', path.join(kdir, 'pki'), '--node-name', 'kubelet-ref', '--timeout', '2m']);
  t.comment(`kubelet reference bootstrap took ${Date.now() - t0} ms`);
  const node = await makeNode(t, cp, 'tlsboot-ref', token);
  t.equal((await runCli(node.args('--once'))).code, 0);

  const all = await cp.csrs();
  const parseCn = async (c: CsrObject): Promise<string> => (await parseCsrPem(requestOf(c))).subject.commonName;
  const kubelet = (await Promise.all(all.map(async (c) => ((await parseCn(c)) === 'system:node:kubelet-ref' ? c : undefined)))).find(Boolean)!;
  const ours = (await Promise.all(all.map(async (c) => ((await parseCn(c)) === 'system:node:tlsboot-ref' ? c : undefined)))).find(Boolean)!;
  t.ok(kubelet && ours, 'both CSRs found');
  t.equal(ours.spec.signerName, kubelet.spec.signerName);
  t.same(ours.spec.usages, kubelet.spec.usages, 'usages and their order');
  t.equal('expirationSeconds' in ours.spec, 'expirationSeconds' in kubelet.spec);
  t.equal(ours.spec.expirationSeconds, undefined);
  const [k, o] = await Promise.all([parseCsrPem(requestOf(kubelet)), parseCsrPem(requestOf(ours))]);
  t.same(o.subject.organizations, k.subject.organizations);
  t.same(o.dnsNames, k.dnsNames);
  t.same(o.ipAddresses, k.ipAddresses);
  // naming scheme: tlsboot's digest function reproduces the real kubelet's CSR name
  t.equal(digestedName(k.spki, k.subject, kubelet.spec.usages), kubelet.metadata.name);
  t.equal(digestedName(o.spki, o.subject, ours.spec.usages), ours.metadata.name);
  t.equal(ours.metadata.name?.length, kubelet.metadata.name?.length);
  const kr = new x509.Pkcs10CertificateRequest(requestOf(kubelet));
  const or = new x509.Pkcs10CertificateRequest(requestOf(ours));
  t.same(or.publicKey.algorithm, kr.publicKey.algorithm, 'key algorithm and curve');
  t.same(or.signatureAlgorithm, kr.signatureAlgorithm, 'signature algorithm');
  t.equal(or.extensions.length, 0);
  t.equal(kr.extensions.length, 0);
  t.same(or.attributes.map((a) => a.type), kr.attributes.map((a) => a.type), 'attributes');
  t.equal(or.subject.replace('tlsboot-ref', 'X'), kr.subject.replace('kubelet-ref', 'X'), 'subject RDN order');
  // the same kubeconfig shape and disk layout as kubelet
  const norm = (text: string, dir: string): unknown => JSON.parse(JSON.stringify(parse(text)).replaceAll(dir, 'DIR'));
  const kkc = norm(await fs.readFile(path.join(kdir, 'kubeconfig'), 'utf8'), kdir) as { users: unknown; contexts: unknown; 'current-context': string };
  const okc = norm(await fs.readFile(node.kubeconfig, 'utf8'), node.dir) as typeof kkc;
  t.same(okc.users, kkc.users);
  t.same(okc.contexts, kkc.contexts);
  t.equal(okc['current-context'], kkc['current-context']);
  const shape = (names: string[]): string[] => names.map((n) => n.replace(/\d{4}(-\d{2}){5}/, 'TS'));
  t.same(shape(await listDir(node.pki)), shape(await listDir(path.join(kdir, 'pki'))));
  // and each side accepts the other's layout: tlsboot takes over kubelet's files without a CSR
  const before = (await csrsFor(cp, 'system:node:kubelet-ref')).length;
  const takeover = await runCli(['run', '--once', '--kubeconfig', path.join(kdir, 'kubeconfig'), '--cert-dir', path.join(kdir, 'pki'), '--node-name', 'kubelet-ref']);
  t.equal(takeover.code, 0, takeover.output);
  t.equal((await csrsFor(cp, 'system:node:kubelet-ref')).length, before, 'kubelet\'s credential is valid for tlsboot: no CSR');
});

t.test('restart with a valid credential creates no CSR', async (t) => {
  const node = await makeNode(t, cp, 'node-restart', token);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const mine = async (): Promise<number> => (await csrsFor(cp, 'system:node:node-restart')).length;
  t.equal(await mine(), 1, 'one CSR for the first bootstrap');
  const p = startTlsboot(t, node.args());
  await p.waitFor(/next rotation scheduled/);
  t.equal(await p.stop(), 0);
  t.equal(await mine(), 1, 'the restart made none');
});

t.test('no auto-approve binding: stays Pending with the approve command; kubectl approve finishes it', async (t) => {
  const node = await makeNode(t, cp, 'node-manual', manualToken);
  const p = startTlsboot(t, node.args('--once'));
  t.equal(await pendingUntilApproved(p, 1500, 'no auto-approve binding'), 0, p.output);
  t.ok((await fs.lstat(path.join(node.pki, 'kubelet-client-current.pem'))).isSymbolicLink());
});

t.test('restart mid-wait: the same CSR is found again by its name and reused', async (t) => {
  const node = await makeNode(t, cp, 'node-midwait', manualToken);
  const first = await runCli(node.args('--once', '--approval-timeout', '2s'));
  t.equal(first.code, 1);
  const name = /approve it with: kubectl certificate approve (node-csr-[\w-]+)/.exec(first.output)?.[1];
  t.ok(name, first.output);
  t.ok((await listDir(node.pki)).includes('kubelet-client.key.tmp'), 'the bootstrap key waits for the next start');
  const p = startTlsboot(t, node.args('--once'));
  await p.waitFor(/reusing the certificate signing request made earlier/);
  await cp.kubectl(['certificate', 'approve', name!]);
  t.equal(await p.exited, 0, p.output);
  t.equal((await csrsBy(cp, byUser(`system:bootstrap:${manualToken.id}`))).filter((c) => c.metadata.name === name).length, 1);
  t.notOk((await listDir(node.pki)).includes('kubelet-client.key.tmp'));
});

t.test('kubectl certificate deny: exit 3 with the reason', async (t) => {
  const node = await makeNode(t, cp, 'node-denied', manualToken);
  const p = startTlsboot(t, node.args('--once'));
  const m = await p.waitFor(/approve="kubectl certificate approve (node-csr-[\w-]+)"/);
  await cp.kubectl(['certificate', 'deny', m[1]!]);
  t.equal(await p.exited, 3);
  t.match(p.output, new RegExp(`${m[1]} was denied \\(reason: KubectlDeny`));
});

t.test('signer validation failure (real KCM): exit 3 with SignerValidationFailure', async (t) => {
  const node = await makeNode(t, cp, 'node-failed', manualToken);
  const p = startTlsboot(t, node.args('--once', '--organization', 'not-nodes'));
  const m = await p.waitFor(/approve="kubectl certificate approve (node-csr-[\w-]+)"/);
  await cp.kubectl(['certificate', 'approve', m[1]!]);
  t.equal(await p.exited, 3);
  t.match(p.output, /failed \(reason: SignerValidationFailure/);
});

t.test('CSR deleted while waiting: requested again, then issued', async (t) => {
  const node = await makeNode(t, cp, 'node-deleted', manualToken);
  const p = startTlsboot(t, node.args('--once'));
  const m = await p.waitFor(/approve="kubectl certificate approve (node-csr-[\w-]+)"/);
  await cp.kubectl(['delete', 'csr', m[1]!]);
  await p.waitFor(/was deleted; requesting again/);
  await until('recreated CSR', async () => ((await csrsBy(cp, (c) => c.metadata.name === m[1])).length === 1 ? true : undefined));
  await cp.kubectl(['certificate', 'approve', m[1]!]);
  t.equal(await p.exited, 0, p.output);
});

t.test('a custom identity on kube-apiserver-client stays Pending and is issued after manual approval', async (t) => {
  const node = await makeNode(t, cp, 'lb1', token);
  const p = startTlsboot(t, node.args('--once', '--signer-name', 'kubernetes.io/kube-apiserver-client', '--common-name', 'haproxy',
    '--organization', 'lb', '--file-prefix', 'haproxy-client'));
  t.equal(await pendingUntilApproved(p, 2000, 'the KCM never auto-approves this signer'), 0, p.output);
  t.ok((await listDir(node.pki)).includes('haproxy-client-current.pem'));
  const who = JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig: node.kubeconfig })) as { status: { userInfo: { username: string; groups: string[] } } };
  t.equal(who.status.userInfo.username, 'haproxy');
  t.ok(who.status.userInfo.groups.includes('lb'));
});

t.test('a rejected (unknown) token: exit 2 and what to do', async (t) => {
  const node = await makeNode(t, cp, 'node-badtoken', { id: 'nosuch', secret: '0123456789abcdef', value: 'nosuch.0123456789abcdef' });
  const res = await runCli(node.args('--once'));
  t.equal(res.code, 2);
  t.match(res.output, /were rejected \(401 Unauthorized\).*Create a new bootstrap token/);
});

t.test('kube-apiserver restarted while waiting, and down at start: recovers without a new CSR', {
  skip: cp.external ? 'needs to stop and start kube-apiserver, which only the local control plane allows' : false,
}, async (t) => {
  const node = await makeNode(t, cp, 'node-apiserver-restart', manualToken);
  const p = startTlsboot(t, node.args('--once'));
  const m = await p.waitFor(/approve="kubectl certificate approve (node-csr-[\w-]+)"/);
  await cp.restartApiserver(1000);
  await p.waitFor(/lost the watch/, 60_000);
  await cp.kubectl(['certificate', 'approve', m[1]!]);
  t.equal(await p.exited, 0, p.output);
  t.equal((await csrsBy(cp, byUser(`system:bootstrap:${manualToken.id}`))).filter((c) => c.metadata.name === m[1]).length, 1);

  const late = await makeNode(t, cp, 'node-late', token);
  await cp.stopProcess('kube-apiserver');
  const q = startTlsboot(t, late.args('--once'));
  await q.waitFor(/retrying.*ECONNREFUSED/);
  await cp.startApiserver();
  t.equal(await q.exited, 0, q.output);
});
