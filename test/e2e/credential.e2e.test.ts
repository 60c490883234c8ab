// `tlsboot credential` as kubectl's exec plugin, on the real control plane: `kubectl auth whoami`
// through a kubeconfig from `tlsboot kubeconfig exec` is the node, before and after a rotation.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { makeNode, startPlane, startTlsboot } from '../support/e2e.js';
import { runCli, tempDir } from '../support/helpers.js';
import { tlsbootCommand } from '../support/paths.js';
import { splitPem } from '../../src/pki/certs.js';

const cp = await startPlane(t);
const token = await cp.createToken();

/** A command client-go can start: this tlsboot (the executable, or node with the CLI). */
async function plugin(dir: string): Promise<string> {
  const { file, args } = tlsbootCommand([]);
  const script = path.join(dir, 'tlsboot-plugin');
  await fs.writeFile(script, `#!/bin/sh\nexec ${[file, ...args].map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
  return script;
}

interface ExecCredential { apiVersion: string; kind: string; status: { clientCertificateData: string; clientKeyData: string; expirationTimestamp: string } }

t.test('kubectl auth whoami through the exec plugin: the node, before and after a rotation', async (t) => {
  const node = await makeNode(t, cp, 'exec-node', token);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const dir = await tempDir(t, 'tlsboot-exec-');
  const out = path.join(dir, 'exec.kubeconfig');
  const w = await runCli(['kubeconfig', 'exec', '--kubeconfig', node.kubeconfig, '--out', out, '--command', await plugin(dir)]);
  t.equal(w.code, 0, w.output);
  t.equal((await fs.stat(out)).mode & 0o777, 0o600);
  const doc = parse(await fs.readFile(out, 'utf8')) as { users: Array<{ user: { exec: { apiVersion: string; args: string[]; interactiveMode: string } } }> };
  t.same(doc.users[0]!.user.exec.args, ['credential', '--kubeconfig', node.kubeconfig]);
  t.equal(doc.users[0]!.user.exec.apiVersion, 'client.authentication.k8s.io/v1');
  t.notMatch(await fs.readFile(out, 'utf8'), /PRIVATE KEY|client-key-data/, 'no key in the exec kubeconfig');
  const whoami = (): Promise<string> => cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: out });
  t.equal(await whoami(), 'system:node:exec-node');

  const before = JSON.parse((await runCli(['credential', '--kubeconfig', node.kubeconfig])).stdout) as ExecCredential;
  t.equal(before.kind, 'ExecCredential');
  const current = splitPem(await fs.readFile(path.join(node.pki, 'kubelet-client-current.pem'), 'utf8'));
  t.equal(before.status.clientCertificateData.trim(), current.filter((b) => b.type === 'CERTIFICATE').map((b) => b.pem.trim()).join('\n'), 'the current certificate');
  t.match(before.status.clientKeyData, /^-----BEGIN (EC |)PRIVATE KEY-----/, 'and its key');
  t.notMatch(before.status.clientCertificateData, /PRIVATE KEY/, 'no key among the certificates');
  t.notMatch(before.status.clientKeyData, /CERTIFICATE/, 'no certificate with the key');
  t.ok(Date.parse(before.status.expirationTimestamp) > Date.now() + 200 * 86400_000, `expires where the rotation window opens (70 % of a year): ${before.status.expirationTimestamp}`);

  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/client certificate issued and written/, 60_000);
  t.equal(await daemon.stop(), 0);
  const after = JSON.parse((await runCli(['credential', '--kubeconfig', node.kubeconfig])).stdout) as ExecCredential;
  t.not(after.status.clientCertificateData, before.status.clientCertificateData, 'the rotated certificate');
  t.equal(await whoami(), 'system:node:exec-node', 'kubectl through the plugin, after the rotation');
});

t.test('no valid certificate: exit 1 with one line, and kubectl says the plugin failed', async (t) => {
  const dir = await tempDir(t, 'tlsboot-exec-none-');
  const missing = path.join(dir, 'kubeconfig');
  const r = await runCli(['credential', '--kubeconfig', missing]);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.match(r.stderr, /kubeconfig: no valid client certificate: it has no client certificate yet; is tlsboot run looking after it\?/);
  t.equal(r.stdout, '');
  const node = await makeNode(t, cp, 'exec-none', token);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const out = path.join(dir, 'exec.kubeconfig');
  t.equal((await runCli(['kubeconfig', 'exec', '--kubeconfig', node.kubeconfig, '--out', out, '--command', await plugin(dir)])).code, 0);
  await fs.rm(node.pki, { recursive: true });
  await t.rejects(cp.kubectl(['auth', 'whoami'], { kubeconfig: out }), /exec|credential|plugin/);
});

t.test('--config with several identities needs --identity', async (t) => {
  const node = await makeNode(t, cp, 'exec-cfg', token);
  t.equal((await runCli(node.args('--once'))).code, 0);
  const dir = await tempDir(t, 'tlsboot-exec-cfg-');
  const config = path.join(dir, 'config.yaml');
  const id = (name: string, kubeconfig: string): string => `  - name: ${name}\n    kubeconfig: ${kubeconfig}\n    certDir: ${dir}/${name}\n    nodeName: ${name}\n    bootstrapKubeconfig: ${node.bootstrap}\n`;
  await fs.writeFile(config, `identities:\n${id('one', node.kubeconfig)}${id('two', path.join(dir, 'two.kubeconfig'))}`);
  const both = await runCli(['credential', '--config', config]);
  t.equal(both.code, 2);
  t.match(both.stderr, /has several identities \(one, two\): name one with --identity/);
  const one = await runCli(['credential', '--config', config, '--identity', 'one']);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, /"kind":"ExecCredential"/);
  t.match((await runCli(['credential', '--config', config, '--identity', 'three'])).stderr, /has no identity "three" \(it has: one, two\)/);
});
