// Kubelet serving certificates end to end on the real control plane: the serving preset of
// `tlsboot run`, approved by `tlsboot approve` with the shipped kubelet-serving policy (its node
// networks narrowed to loopback), served by a real TLS server, rotated; a SAN outside the policy
// denied; and the nodeAddresses check against real Node objects.
import { promises as fs } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse, stringify } from 'yaml';
import { currentTarget, makeNode, startPlane, startTlsboot, type Node } from '../support/e2e.js';
import { ROOT, runCli, tempDir } from '../support/helpers.js';

const cp = await startPlane(t);
const token = await cp.createToken();
const dir = await tempDir(t, 'tlsboot-serving-');
const approverKubeconfig = path.join(dir, 'approver.kubeconfig');

/** The shipped policy, with the test's node network (loopback) and optionally nodeAddresses. */
async function writePolicy(file: string, nodeAddresses: boolean): Promise<string> {
  const doc = parse(await fs.readFile(path.join(ROOT, 'examples', 'approver', 'kubelet-serving.yaml'), 'utf8')) as { rules: Array<Record<string, unknown>> };
  for (const rule of doc.rules) Object.assign(rule, { ipAddresses: ['127.0.0.0/8'], nodeAddresses });
  await fs.writeFile(file, stringify(doc));
  return file;
}

/** A node with its client certificate, as kubelet's bootstrap leaves it. */
async function clientNode(name: string): Promise<Node> {
  const node = await makeNode(t, cp, name, token);
  const r = await runCli(node.args('--once'));
  if (r.code !== 0) throw new Error(`bootstrap of ${name} failed:\n${r.output}`);
  return node;
}

const serving = (node: Node, ...extra: string[]): string[] =>
  ['run', '--serving', '--kubeconfig', node.kubeconfig, '--cert-dir', node.pki, '--node-name', node.name, ...extra];

/** Serve HTTPS with the current serving file (certificate and key in one), verify as a client would. */
async function handshake(t: Test, file: string, servername: string): Promise<string> {
  const pem = await fs.readFile(file, 'utf8');
  const server = https.createServer({ cert: pem, key: pem }, (_req, res) => res.end('kubelet'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const ca = await fs.readFile(cp.caPath, 'utf8');
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, ca, servername, path: '/' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const policyFile = await writePolicy(path.join(dir, 'policy.yaml'), false);
const setup = await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', policyFile, '--out', approverKubeconfig]);
if (setup.code !== 0) throw new Error(setup.output);

t.test('the serving preset, approved by tlsboot approve, served over real TLS, rotated', async (t) => {
  const approver = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', policyFile]);
  await approver.waitFor(/watching certificate signing requests signers=kubernetes.io\/kubelet-serving/);
  const node = await clientNode('srv1');
  const clientKubeconfig = await fs.readFile(node.kubeconfig, 'utf8');

  const r = await runCli(serving(node, '--dns-name', 'srv1', '--dns-name', 'srv1.nodes.example.com', '--ip-address', '127.0.0.1', '--once'));
  t.equal(r.code, 0, r.output);
  t.match(r.output, /requesting a serving certificate, authenticating with the node's client kubeconfig/);
  t.match(r.output, /serving certificate issued and written csr=csr-\S+ file=\S+\/kubelet-server-\d{4}(-\d{2}){5}\.pem/);
  t.notMatch(r.output, /client certificate|bootstrap/, 'its log lines speak of the serving certificate');
  await approver.waitFor(/approved csr=csr-\S+ signer=kubernetes.io\/kubelet-serving requester=system:node:srv1 rule=kubelet-serving/);
  t.equal(await fs.readFile(node.kubeconfig, 'utf8'), clientKubeconfig, 'the node\'s client kubeconfig is left as it was');

  const current = path.join(node.pki, 'kubelet-server-current.pem');
  t.equal(await handshake(t, current, 'srv1'), 'kubelet', 'verified with the cluster CA for the DNS name srv1');
  t.equal(await handshake(t, current, 'srv1.nodes.example.com'), 'kubelet', 'and for srv1.nodes.example.com');
  await t.rejects(handshake(t, current, 'srv2'), /altnames|does not match/, 'not for another name');

  // The daemon keeps it valid. Asked for other names (the host's addresses changed, say), it
  // re-issues at once; then SIGUSR1 rotates now, with the client kubeconfig again.
  const daemon = startTlsboot(t, serving(node, '--dns-name', 'srv1', '--ip-address', '127.0.0.1'));
  await daemon.waitFor(/does not name the requested DNS names and IP addresses; rotating now has=srv1,srv1.nodes.example.com,127.0.0.1 wants=srv1,127.0.0.1[\s\S]*serving certificate issued and written[\s\S]*next rotation scheduled/);
  await t.rejects(handshake(t, current, 'srv1.nodes.example.com'), /altnames|does not match/, 'the new certificate names only what was asked');
  const before = await currentTarget(node, 'kubelet-server');
  await new Promise((r) => setTimeout(r, 1100)); // file names have whole seconds
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/rotating now on request[\s\S]*serving certificate issued and written/);
  t.not(await currentTarget(node, 'kubelet-server'), before, 'a new serving certificate is current');
  t.equal(await handshake(t, current, 'srv1'), 'kubelet');
  t.equal(await daemon.stop(), 0);
  t.equal(await approver.stop(), 0);
});

t.test('a SAN outside the policy is denied, and the node is told why', async (t) => {
  const approver = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', policyFile]);
  await approver.waitFor(/watching certificate signing requests/);
  const node = await clientNode('srv3');
  const r = await runCli(serving(node, '--dns-name', 'evil.example.com', '--ip-address', '127.0.0.1', '--once'));
  t.equal(r.code, 3, r.output);
  t.match(r.output, /was denied \(reason: TlsbootPolicyViolation, message: tlsboot policy: rule "kubelet-serving": DNS name "evil.example.com" is not allowed/);
  t.equal(await approver.stop(), 0);
});

t.test('nodeAddresses: every SAN among the Node object\'s addresses', async (t) => {
  const strict = await writePolicy(path.join(dir, 'strict.yaml'), true);
  // The approver now needs get on nodes, which cluster approver grants for this policy only.
  const rbac = await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', strict, '--dry-run']);
  t.match(rbac.output, /resources:\n\s+- nodes\n\s+verbs:\n\s+- get/);
  t.equal((await runCli(['cluster', 'approver', '--kubeconfig', cp.adminKubeconfig, '--policy', strict])).code, 0);
  const approver = startTlsboot(t, ['approve', '--kubeconfig', approverKubeconfig, '--policy', strict]);
  await approver.waitFor(/watching certificate signing requests/);

  const nodeObject = async (name: string, addresses: Array<[string, string]>): Promise<void> => {
    await cp.apply(stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }));
    const status = { status: { addresses: addresses.map(([type, address]) => ({ type, address })) } };
    await cp.kubectl(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
  };
  const has = await clientNode('srv4');
  await nodeObject('srv4', [['InternalIP', '127.0.0.1'], ['Hostname', 'srv4']]);
  const ok = await runCli(serving(has, '--dns-name', 'srv4', '--ip-address', '127.0.0.1', '--once'));
  t.equal(ok.code, 0, ok.output);

  const lacks = await clientNode('srv5');
  await nodeObject('srv5', [['InternalIP', '127.0.0.9'], ['Hostname', 'srv5']]);
  const denied = await runCli(serving(lacks, '--dns-name', 'srv5', '--ip-address', '127.0.0.1', '--once'));
  t.equal(denied.code, 3, denied.output);
  t.match(denied.output, /127\.0\.0\.1 is not among Node srv5's addresses \(127\.0\.0\.9, srv5\)/);

  const none = await clientNode('srv6');
  const absent = await runCli(serving(none, '--dns-name', 'srv6', '--ip-address', '127.0.0.1', '--once'));
  t.equal(absent.code, 3, absent.output);
  t.match(absent.output, /Node \\?"srv6\\?" does not exist/);
  t.equal(await approver.stop(), 0);
});
