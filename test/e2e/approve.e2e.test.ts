// `tlsboot approve` against the real control plane, running as the least-privilege identity
// that `tlsboot cluster approver` sets up, with the policy from examples/approver.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { adminClient } from '../../src/cluster/cluster.js';
import { buildCsrPem } from '../../src/pki/csr.js';
import { generateKey } from '../../src/pki/keys.js';
import { freePort } from '../controlplane/controlplane.js';
import { csrsBy, currentTarget, makeNode, startPlane, startTlsboot, until, type Node } from '../support/e2e.js';
import { ROOT, runCli, startNotifyListener, tempDir } from '../support/helpers.js';

const cp = await startPlane(t);
const dir = await tempDir(t, 'tlsboot-approver-');
const POLICY = path.join(ROOT, 'examples', 'approver', 'policy.yaml');
const approverKubeconfig = path.join(dir, 'approver.kubeconfig');
const CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client';

const haproxy = (node: Node, cn: string, ...extra: string[]): string[] => node.args(
  '--signer-name', CLIENT_SIGNER, '--common-name', cn, '--organization', 'tlsboot:lb',
  '--usage', 'digital signature', '--usage', 'client auth', '--file-prefix', 'haproxy-client', ...extra);
const conditionsOf = async (filter: (c: CsrObject) => boolean): Promise<string[]> =>
  (await csrsBy(cp, filter)).flatMap((c) => (c.status?.conditions ?? []).map((x) => `${x.type}/${x.reason}`));
const whoami = async (kubeconfig: string): Promise<{ username: string; groups: string[] }> => {
  const { username, groups } = (JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig })) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
  return { username, groups };
};

t.test('cluster approver: least-privilege RBAC (dry run, apply, idempotent) and a kubeconfig for it', async (t) => {
  const dry = await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', POLICY, '--dry-run']);
  t.equal(dry.code, 0, dry.output);
  t.match(dry.output, /kind: ClusterRole\n[\s\S]*resourceNames:\n\s+- kubernetes.io\/kube-apiserver-client\n\s+verbs:\n\s+- approve/);
  t.match(dry.output, /name: system:node-bootstrapper[\s\S]*name: system:bootstrappers:lb[\s\S]*name: tlsboot:lb/);
  const applied = await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', POLICY, '--out', approverKubeconfig, '--ttl', '2h']);
  t.equal(applied.code, 0, applied.output);
  t.equal((applied.output.match(/ created$/gm) ?? []).length, 3, applied.output);
  t.equal((await fs.stat(approverKubeconfig)).mode & 0o777, 0o600);
  t.equal((await whoami(approverKubeconfig)).username, 'tlsboot:approver');
  const again = await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', POLICY]);
  t.match(again.output, /nothing to change/);

  // Least privilege, as the API server's authorizer sees it.
  const { api } = await adminClient(approverKubeconfig);
  t.teardown(() => api.close());
  const can = (verb: string, resource: string, name?: string, subresource?: string): Promise<boolean> =>
    api.canI({ group: 'certificates.k8s.io', resource, verb, ...(name ? { name } : {}), ...(subresource ? { subresource } : {}) });
  t.ok(await can('approve', 'signers', CLIENT_SIGNER), 'may approve the policy\'s signer');
  t.notOk(await can('approve', 'signers', 'kubernetes.io/kube-apiserver-client-kubelet'), 'not the kubelet signer');
  t.notOk(await can('approve', 'signers', 'kubernetes.io/kubelet-serving'), 'not kubelet-serving');
  t.notOk(await can('update', 'certificatesigningrequests', undefined, 'status'), 'may not sign (status)');
  t.notOk(await can('delete', 'certificatesigningrequests'), 'may not delete CSRs');
  t.notOk(await api.canI({ group: '', resource: 'secrets', verb: 'get' }), 'may not read secrets');
});

t.test('approve: approved, renewed, denied with the reason the requester sees, left alone', async (t) => {
  const metricsPort = await freePort();
  const notify = await startNotifyListener(t, path.join(dir, 'notify.sock'));
  const approver = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', POLICY,
    '--metrics-address', `127.0.0.1:${metricsPort}`, '--watch-timeout', '2s'], { NOTIFY_SOCKET: path.join(dir, 'notify.sock') });
  await approver.waitFor(/watching certificate signing requests signers=kubernetes.io\/kube-apiserver-client rules=2/);
  await until('READY=1', () => notify.lines.find((l) => l.startsWith('READY=1')));
  t.match(notify.lines.find((l) => l.startsWith('READY=1')), /STATUS=watching CSRs with 2 rule\(s\) from .*policy.yaml/);

  await t.test('a box in the policy\'s bootstrap group gets haproxy:lb1, then renews it with its own cert', async (t) => {
    const token = await cp.createToken({ groups: ['system:bootstrappers:lb'] });
    const node = await makeNode(t, cp, 'lb1', token);
    const first = await runCli(haproxy(node, 'haproxy:lb1', '--expiration-seconds', '3600', '--once'));
    t.equal(first.code, 0, first.output);
    t.same(await whoami(node.kubeconfig), { username: 'haproxy:lb1', groups: ['tlsboot:lb', 'system:authenticated'] });
    t.same(await conditionsOf((c) => c.spec.username === `system:bootstrap:${token.id}`), ['Approved/TlsbootPolicy']);
    await approver.waitFor(/INFO  approved csr=node-csr-\S+ signer=kubernetes.io\/kube-apiserver-client requester=system:bootstrap:\S+ rule=lb-bootstrap/);

    // SIGUSR1: rotate now, authenticating with the current certificate (user haproxy:lb1).
    const daemon = startTlsboot(t, haproxy(node, 'haproxy:lb1', '--expiration-seconds', '3600'));
    await daemon.waitFor(/next rotation scheduled/);
    const before = await currentTarget(node, 'haproxy-client');
    daemon.child.kill('SIGUSR1');
    await until('a renewed certificate', async () => (await currentTarget(node, 'haproxy-client')) !== before, 60_000);
    t.same(await conditionsOf((c) => c.spec.username === 'haproxy:lb1'), ['Approved/TlsbootPolicy']);
    await approver.waitFor(/approved csr=csr-\S+ signer=\S+ requester=haproxy:lb1 rule=lb-renewal/);
    t.equal(await daemon.stop(), 0);
  });

  await t.test('a request beyond the policy is denied, and the requester is told why', async (t) => {
    const token = await cp.createToken({ groups: ['system:bootstrappers:lb'] });
    const node = await makeNode(t, cp, 'lb2', token);
    const run = await runCli(haproxy(node, 'haproxy:lb2', '--expiration-seconds', '9999999', '--once'));
    t.equal(run.code, 3, run.output);
    t.match(run.output, /was denied \(reason: TlsbootPolicyViolation, message: tlsboot policy: rule "lb-bootstrap": spec.expirationSeconds 9999999 is more than 2592000\)/);
    t.same(await conditionsOf((c) => c.spec.username === `system:bootstrap:${token.id}`), ['Denied/TlsbootPolicyViolation']);
    await approver.waitFor(/WARN  denied csr=\S+ .*rule=lb-bootstrap message=/);
  });

  await t.test('a CSR from a group the policy does not name is never approved', async (t) => {
    await cp.allowCsrCreation('system:bootstrappers:other');
    const token = await cp.createToken({ groups: ['system:bootstrappers:other'] });
    const node = await makeNode(t, cp, 'lb3', token);
    const run = startTlsboot(t, haproxy(node, 'haproxy:lb3', '--expiration-seconds', '3600'));
    const [, name] = await run.waitFor(/waiting for the certificate signing request to be approved csr=(\S+)/);
    await approver.waitFor(new RegExp(`left alone csr=${name} signer=${CLIENT_SIGNER} requester=system:bootstrap:${token.id} why="no rule for signer`));
    // Several watch timeouts (2 s) and a policy reload later, it is still pending.
    approver.child.kill('SIGHUP');
    await approver.waitFor(/policy reloaded/);
    await approver.waitFor(new RegExp(`left alone csr=${name}[^\\n]*\\n[\\s\\S]*left alone csr=${name}`));
    await new Promise((r) => setTimeout(r, 5000));
    t.same(await conditionsOf((c) => c.metadata.name === name), [], 'no condition at all');
    await run.stop();

    // --once --dry-run shows what would happen to what is pending, and writes nothing.
    const dry = await runCli(['approve', '--once', '--dry-run', '--kubeconfig', approverKubeconfig, '--policy', POLICY]);
    t.equal(dry.code, 0, dry.output);
    t.match(dry.output, new RegExp(`left alone csr=${name}`));
    t.match(dry.output, /approved 0, denied 0, left alone [1-9]\d*, errors 0/);
  });

  await t.test('every decision is counted in the metrics', async (t) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    t.match(text, /tlsboot_approver_decisions_total\{decision="approved",rule="lb-bootstrap",signer="kubernetes.io\/kube-apiserver-client"\} 1\n/);
    t.match(text, /tlsboot_approver_decisions_total\{decision="approved",rule="lb-renewal",signer="kubernetes.io\/kube-apiserver-client"\} 1\n/);
    t.match(text, /tlsboot_approver_decisions_total\{decision="denied",rule="lb-bootstrap",signer="kubernetes.io\/kube-apiserver-client"\} 1\n/);
    t.match(text, /tlsboot_approver_decisions_total\{decision="ignored",rule="",signer="kubernetes.io\/kube-apiserver-client"\} [1-9]/);
    t.equal((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200);
    t.notMatch(approver.output, /watching CSRs failed|could not write/, 'the watch was reopened every 2 s without errors');
  });

  t.equal(await approver.stop(), 0);
  t.match(approver.output, /stopped/);
  await until('STOPPING=1', () => notify.lines.some((l) => l.startsWith('STOPPING=1')));
});

t.test('two approvers at once: each CSR gets exactly one decision', async (t) => {
  const a = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', POLICY]);
  const b = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', POLICY]);
  await a.waitFor(/watching certificate signing requests/);
  await b.waitFor(/watching certificate signing requests/);
  const token = await cp.createToken({ groups: ['system:bootstrappers:lb'] });
  const nodes = await Promise.all(['lb4', 'lb5', 'lb6'].map((n) => makeNode(t, cp, n, token)));
  const runs = await Promise.all(nodes.map((n) => runCli(haproxy(n, `haproxy:${n.name}`, '--expiration-seconds', '3600', '--once'))));
  t.same(runs.map((r) => r.code), [0, 0, 0], runs.map((r) => r.output).join('\n'));
  t.same(await conditionsOf((c) => c.spec.username === `system:bootstrap:${token.id}`), ['Approved/TlsbootPolicy', 'Approved/TlsbootPolicy', 'Approved/TlsbootPolicy']);
  t.equal(await a.stop(), 0);
  t.equal(await b.stop(), 0);
});

t.test('the API server answers a stale or contradictory approval with 409 and 422 (the fake\'s twin)', async (t) => {
  const { api } = await adminClient(cp.adminKubeconfig);
  t.teardown(() => api.close());
  const pem = await buildCsrPem(await generateKey('ecdsa-p256'), { subject: { commonName: 'twin', organizations: [] }, dnsNames: [], ipAddresses: [] });
  const csr = await api.createCsr({ metadata: { generateName: 'twin-' }, spec: { request: Buffer.from(pem).toString('base64'), signerName: 'example.com/twin', usages: ['client auth'] } });
  const stale: CsrObject = { ...csr, metadata: { ...csr.metadata, resourceVersion: String(Number(csr.metadata.resourceVersion) - 1) } };
  await t.rejects(api.updateApproval(stale), { message: /: 409 Conflict: Operation cannot be fulfilled/ });
  const both: CsrObject = { ...csr, status: { conditions: [{ type: 'Approved', status: 'True' }, { type: 'Denied', status: 'True' }] } };
  await t.rejects(api.updateApproval(both), { message: /: 422 Invalid: .*mutually exclusive/ });
});

const widerPolicy = async (): Promise<string> =>
  (await fs.readFile(POLICY, 'utf8')).replace('signerName: kubernetes.io/kube-apiserver-client\n    requesters:\n      groups: [tlsboot:lb]',
    'signerName: example.com/lb-client\n    requesters:\n      groups: [tlsboot:lb]');

t.test('SIGHUP with a broken policy, or one it lacks permissions for, keeps the running policy', async (t) => {
  const live = path.join(dir, 'live.yaml');
  await fs.copyFile(POLICY, live);
  const approver = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', live]);
  await approver.waitFor(/watching certificate signing requests/);
  await fs.writeFile(live, 'rules: [');
  approver.child.kill('SIGHUP');
  await approver.waitFor(/ERROR policy not reloaded, keeping the old one: .*live.yaml: not valid YAML/);
  await fs.writeFile(live, await widerPolicy());
  approver.child.kill('SIGHUP');
  await approver.waitFor(/ERROR policy not reloaded, keeping the old one: .*its identity may not approve signers example.com\/lb-client/);
  // The old policy still decides.
  const token = await cp.createToken({ groups: ['system:bootstrappers:lb'] });
  const node = await makeNode(t, cp, 'lb7', token);
  const run = await runCli(haproxy(node, 'haproxy:lb7', '--expiration-seconds', '3600', '--once'));
  t.equal(run.code, 0, run.output);
  t.same(await conditionsOf((c) => c.spec.username === `system:bootstrap:${token.id}`), ['Approved/TlsbootPolicy']);
  t.notMatch(approver.output, /policy reloaded/);
  t.equal(await approver.stop(), 0);
});

t.test('approve refuses to start without the permissions its policy needs', async (t) => {
  const wider = path.join(dir, 'wider.yaml');
  await fs.writeFile(wider, await widerPolicy());
  const run = await runCli(['approve', '--kubeconfig', approverKubeconfig, '--policy', wider]);
  t.equal(run.code, 2, run.output);
  t.match(run.output, /approver.kubeconfig: its identity may not approve signers example.com\/lb-client; grant them with: tlsboot cluster approver/);
  t.equal(run.output.trim().split('\n').length, 1, 'one line');

  // A requester's credentials: may read CSRs, may not decide them.
  const token = await cp.createToken({ groups: ['system:bootstrappers:lb'] });
  const requester = await cp.writeBootstrapKubeconfig(path.join(dir, 'requester.kubeconfig'), token.value);
  const denied = await runCli(['approve', '--kubeconfig', requester, '--policy', POLICY]);
  t.equal(denied.code, 2, denied.output);
  t.match(denied.output, /its identity may not update certificatesigningrequests\/approval, approve signers kubernetes.io\/kube-apiserver-client;/);
});
