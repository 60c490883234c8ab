// Fault suite: what a crash, a disk or a person leaves in the node's files. The current PEM
// corrupt, truncated, dangling or a plain file; a key that does not match; the kubeconfig or the
// saved key of a pending CSR broken. Each run must end with a working credential.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { generateKey, privateKeyPem } from '../../src/pki/keys.js';
import { makeNode, startPlane, type Node } from '../support/e2e.js';
import { expectHealthy, once, PEM } from './support.js';

const cp = await startPlane(t);
const token = await cp.createToken();

async function bootstrapped(t: Parameters<typeof expectHealthy>[0], name: string): Promise<{ node: Node; target: string }> {
  const node = await makeNode(t, cp, name, token);
  const r = await once(node);
  if (r.code !== 0) throw new Error(r.output);
  return { node, target: path.resolve(node.pki, await fs.readlink(path.join(node.pki, PEM))) };
}

/** Break the node's files, run --once, and expect a working credential and `csrs` CSRs in all. */
const cases: Array<[string, (node: Node, target: string) => Promise<void>, RegExp, number]> = [
  ['the current PEM holds garbage', (_n, target) => fs.writeFile(target, 'garbage\n'), /unusable/, 2],
  ['the current PEM is cut short', async (_n, target) => {
    const pem = await fs.readFile(target, 'utf8');
    await fs.writeFile(target, pem.slice(0, Math.floor(pem.length / 2)));
  }, /unusable/, 2],
  ['the current PEM is empty', (_n, target) => fs.writeFile(target, ''), /unusable/, 2],
  ['-current.pem points at a file that is gone', (_n, target) => fs.rm(target), /bootstrapping a client certificate with the bootstrap token/, 2],
  ['the key in the PEM belongs to another certificate', async (_n, target) => {
    const pem = await fs.readFile(target, 'utf8');
    const other = privateKeyPem(await generateKey('ecdsa-p256'));
    await fs.writeFile(target, pem.replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n/, other));
  }, /the private key does not match the certificate/, 2],
  ['the kubeconfig is not YAML', (node) => fs.writeFile(node.kubeconfig, 'clusters: [oops\n'), /ignoring the unusable kubeconfig/, 2],
  ['the kubeconfig is gone', (node) => fs.rm(node.kubeconfig), /bootstrapping a client certificate/, 2],
  ['-current.pem is a plain file (an old kubelet)', async (node, target) => {
    const link = path.join(node.pki, PEM);
    await fs.rm(link);
    await fs.copyFile(target, link);
  }, /a valid client certificate is on disk/, 1],
];
for (const [what, breakIt, says, csrs] of cases) {
  t.test(what, async (t) => {
    const { node, target } = await bootstrapped(t, what.replace(/[^a-z]+/g, '-').replace(/^-|-$/g, '').slice(0, 40));
    await breakIt(node, target);
    const r = await once(node);
    t.equal(r.code, 0, r.output);
    t.match(r.output, says);
    t.equal(await expectHealthy(t, cp, node), csrs);
  });
}

t.test('the saved key of a pending CSR is corrupt: a new key, and the CSR name follows it', async (t) => {
  const node = await makeNode(t, cp, 'bad-bootstrap-key', token);
  await fs.mkdir(node.pki, { recursive: true });
  await fs.writeFile(path.join(node.pki, 'kubelet-client.key.tmp'), '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
  const r = await once(node);
  t.equal(r.code, 0, r.output);
  t.match(r.output, /the saved key is unreadable; making a new one/);
  t.equal(await expectHealthy(t, cp, node), 1);
});
