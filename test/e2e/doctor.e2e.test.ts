// tlsboot doctor against the real control plane: every failure it explains is provoked for real.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Check } from '../../src/daemon/doctor.js';
import { FUTURE_SNI } from '../controlplane/controlplane.js';
import { makeNode, startPlane } from '../support/e2e.js';
import { runCli, tempDir } from '../support/helpers.js';

const cp = await startPlane(t);
const good = await cp.createToken();
await cp.allowCsrCreation('system:bootstrappers:manual');
const manual = await cp.createToken({ groups: ['system:bootstrappers:manual'] });
const nobody = await cp.createToken({ groups: ['system:bootstrappers:unbound'] });

async function doctor(args: string[]): Promise<{ code: number; checks: Check[]; text: string }> {
  const json = await runCli(['doctor', ...args, '--json']);
  const text = await runCli(['doctor', ...args]);
  const parsed = JSON.parse(json.output) as { identities: Array<{ checks: Check[] }> };
  return { code: json.code, checks: parsed.identities[0]!.checks, text: text.output };
}
const verdicts = (checks: Check[]): string[] => checks.map((c) => `${c.check}:${c.verdict}`);
const doctorArgs = (args: string[]): string[] => args.filter((a) => a !== 'run' && a !== '--once');

t.test('all well before bootstrap; after it, the certificate path', async (t) => {
  const node = await makeNode(t, cp, 'doc-good', good);
  const before = await doctor(doctorArgs(node.args()));
  t.equal(before.code, 0, before.text);
  t.same(verdicts(before.checks), ['credentials:ok', 'server:ok', 'authentication:ok', 'csr permission:ok', 'auto-approval:ok', 'csr shape:ok', 'our CSRs:ok', 'certificate:warn']);
  t.match(before.text, /ok   server: https:\/\/127.0.0.1:\d+ reachable, TLS verified, Kubernetes v1.36.3/);
  t.match(before.text, new RegExp(`ok   authentication: the API server sees system:bootstrap:${good.id}`));
  t.match(before.text, /auto-approval: the controller-manager will approve \(nodeclient\)/);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const after = await doctor(doctorArgs(node.args()));
  t.equal(after.code, 0, after.text);
  t.match(after.text, /credentials: the client certificate in .* \(valid\)/);
  t.match(after.text, /authentication: the API server sees system:node:doc-good in system:nodes/);
  t.match(after.text, /auto-approval: the controller-manager will approve \(selfnodeclient\)/);
  t.match(after.text, /ok   certificate: .*kubelet-client-current.pem: valid until .*, key matches, chains to the CA; rotation due/);
});

t.test('server problems: unreachable, wrong CA, wrong name, clock skew', async (t) => {
  const node = await makeNode(t, cp, 'doc-server', good);
  const text = await fs.readFile(node.bootstrap, 'utf8');
  await fs.writeFile(node.bootstrap, text.replace(cp.server, 'https://127.0.0.1:1'));
  const down = await doctor(doctorArgs(node.args()));
  t.equal(down.code, 1);
  t.same(verdicts(down.checks), ['credentials:ok', 'server:fail'], 'stops at the first failure');
  t.match(down.text, /FAIL server: cannot reach https:\/\/127.0.0.1:1: .*ECONNREFUSED.*\n {5}fix: check the server URL/);

  const dir = await tempDir(t);
  const { execFile } = await import('node:child_process');
  await new Promise((resolve, reject) => execFile('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=other-ca', '-keyout', path.join(dir, 'k'), '-out', path.join(dir, 'ca.crt')], (e) => (e ? reject(e) : resolve(undefined))));
  const other = (await fs.readFile(path.join(dir, 'ca.crt'))).toString('base64');
  await fs.writeFile(node.bootstrap, text.replace(/certificate-authority-data: .*/, `certificate-authority-data: ${other}`));
  const ca = await doctor(doctorArgs(node.args()));
  t.equal(ca.code, 1);
  // The chain the server presents, the CA that would verify it, and whether cluster-info offers it.
  t.match(ca.text, /FAIL server: the server's certificate does not verify against the 1 CA\(s\) in \S+ \(sha256:[0-9a-f]{64}\)\. It presents: CN=kube-apiserver <- CN=tlsboot-test-ca; the CA that would verify it is "CN=tlsboot-test-ca"\. cluster-info does not offer it/);
  t.match(ca.text, /fix: the cluster's admin publishes the CA bundle: tlsboot cluster info --kubeconfig ADMIN --ca BUNDLE/);

  await fs.writeFile(node.bootstrap, text.replace(/(certificate-authority-data: .*)/, '$1\n    tls-server-name: wrong.example'));
  const san = await doctor(doctorArgs(node.args()));
  t.equal(san.code, 1);
  t.match(san.text, /FAIL server: [\s\S]*fix: the server's certificate does not name .*tls-server-name/);

  // Clock skew: for this name the API server presents a certificate whose validity starts ten
  // years from now, as a node with its clock far behind would see the real one. (Only the
  // control plane the suite starts has that certificate; an attached kind cluster does not.)
  if (cp.external) return;
  await fs.writeFile(node.bootstrap, text.replace(/(certificate-authority-data: .*)/, `$1\n    tls-server-name: ${FUTURE_SNI}`));
  const skew = await doctor(doctorArgs(node.args()));
  t.equal(skew.code, 1);
  t.match(skew.text, /FAIL server: .*certificate is not yet valid[\s\S]*fix: the certificate dates do not fit this machine's clock: check the time \(timedatectl, chrony\)/);
});

t.test('token problems: malformed, unknown, without permission', async (t) => {
  const bad = await makeNode(t, cp, 'doc-malformed', { id: 'x', secret: 'y', value: 'not-a-token' });
  const malformed = await doctor(doctorArgs(bad.args()));
  t.same(verdicts(malformed.checks), ['credentials:fail']);
  t.match(malformed.text, /not in the \[a-z0-9\]\{6\}\.\[a-z0-9\]\{16\} format/);
  const unknown = await makeNode(t, cp, 'doc-unknown', { id: 'qqqqqq', secret: '0123456789abcdef', value: 'qqqqqq.0123456789abcdef' });
  const u = await doctor(doctorArgs(unknown.args()));
  t.match(u.text, /FAIL authentication: the bootstrap token was rejected \(401\)[\s\S]*fix: create a new one \(tlsboot token create/);
  const unbound = await makeNode(t, cp, 'doc-unbound', nobody);
  const n = await doctor(doctorArgs(unbound.args()));
  t.same(verdicts(n.checks), ['credentials:ok', 'server:ok', 'authentication:ok', 'csr permission:fail']);
  t.match(n.text, /fix: bind system:node-bootstrapper to its group: tlsboot cluster rbac --kubeconfig ADMIN --group system:bootstrappers:unbound/);
});

t.test('approval problems: no auto-approval, a pending CSR, another signer, a shape the approver refuses', async (t) => {
  const node = await makeNode(t, cp, 'doc-manual', manual);
  t.equal((await runCli(node.args('--once', '--approval-timeout', '1s'))).code, 1);
  const m = await doctor(doctorArgs(node.args()));
  t.equal(m.code, 0, 'warnings only');
  t.match(m.text, /WARN auto-approval: system:bootstrap:\w+ may not create certificatesigningrequests\/nodeclient: its CSRs stay Pending/);
  t.match(m.text, /WARN our CSRs: node-csr-[\w-]+ Pending, \d+ min old\n {5}fix: kubectl certificate approve node-csr-/);
  const signer = await doctor(doctorArgs(node.args('--signer-name', 'kubernetes.io/kube-apiserver-client', '--common-name', 'haproxy')));
  t.match(signer.text, /WARN auto-approval: kube-controller-manager never auto-approves kubernetes.io\/kube-apiserver-client/);
  const shape = await doctor(doctorArgs(node.args('--organization', 'not-nodes')));
  t.equal(shape.code, 1);
  t.match(shape.text, /FAIL csr shape: the controller-manager would not approve or sign this request: O must be exactly system:nodes/);
});

t.test('a broken certificate on disk', async (t) => {
  const node = await makeNode(t, cp, 'doc-broken', good);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const file = await fs.realpath(path.join(node.pki, 'kubelet-client-current.pem'));
  const text = await fs.readFile(file, 'utf8');
  const other = await makeNode(t, cp, 'doc-other', good);
  t.equal((await runCli(other.args('--once'))).code, 0);
  const otherKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*/.exec(await fs.readFile(path.join(other.pki, 'kubelet-client-current.pem'), 'utf8'))![0];
  await fs.writeFile(file, text.replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*/, otherKey));
  const r = await doctor(doctorArgs(node.args()));
  t.equal(r.code, 1);
  t.same(verdicts(r.checks), ['credentials:fail']);
  t.match(r.text, /FAIL credentials: the key in .*kubelet-client-current.pem does not match its certificate\n {5}fix: remove .*; tlsboot run then bootstraps again/);
  // and tlsboot itself does not trust such a pair: it bootstraps again
  const healed = await runCli(node.args('--once'));
  t.equal(healed.code, 0, healed.output);
  t.match(healed.output, /the client certificate in the kubeconfig is unusable; bootstrapping again.*does not match/);
  t.equal((await doctor(doctorArgs(node.args()))).code, 0);
});
