// From a bare cluster to a node with a certificate, with tlsboot commands only (issue: cluster
// side), against the real control plane.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { ControlPlane } from '../controlplane/controlplane.js';
import { runCli, tempDir } from '../support/helpers.js';

const cp = await ControlPlane.start({ bare: true, log: (l) => t.comment(l) });
t.teardown(() => cp.stop({ keepLogs: !t.passing() }));
const bindings = async (): Promise<string[]> =>
  (JSON.parse(await cp.kubectl(['get', 'clusterrolebindings', '-o', 'json'])) as { items: Array<{ metadata: { name: string } }> }).items
    .map((i) => i.metadata.name).filter((n) => n.startsWith('kubeadm:') || n === 'system:kube-apiserver-to-kubelet').sort();
const whoami = async (kubeconfig: string): Promise<string> =>
  (JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig })) as { status: { userInfo: { username: string } } }).status.userInfo.username;
const admin = ['--kubeconfig', cp.adminKubeconfig];

t.test('cluster rbac --dry-run prints and applies nothing; then applies idempotently', async (t) => {
  const dry = await runCli(['cluster', 'rbac', ...admin, '--dry-run', '-o', 'json']);
  t.equal(dry.code, 0, dry.output);
  const list = JSON.parse(dry.output) as { kind: string; items: Array<{ kind: string; metadata: { name: string } }> };
  t.equal(list.kind, 'List');
  t.same(list.items.map((i) => `${i.kind}/${i.metadata.name}`), [
    'ClusterRoleBinding/kubeadm:kubelet-bootstrap', 'ClusterRoleBinding/kubeadm:node-autoapprove-bootstrap',
    'ClusterRoleBinding/kubeadm:node-autoapprove-certificate-rotation', 'ClusterRole/system:kube-apiserver-to-kubelet',
    'ClusterRoleBinding/system:kube-apiserver-to-kubelet',
    // kubeadm's discovery: cluster-info (from the admin kubeconfig's server and CA) and its anonymous read
    'ConfigMap/cluster-info', 'Role/kubeadm:bootstrap-signer-clusterinfo', 'RoleBinding/kubeadm:bootstrap-signer-clusterinfo',
  ]);
  t.same(await bindings(), [], 'nothing applied');
  const first = await runCli(['cluster', 'rbac', ...admin]);
  t.equal(first.code, 0, first.output);
  t.equal((first.output.match(/ created$/gm) ?? []).length, 8);
  t.equal((await bindings()).length, 4);
  const second = await runCli(['cluster', 'rbac', ...admin]);
  t.match(second.output, /nothing to change/);
  // a binding changed by hand is put back
  await cp.kubectl(['patch', 'clusterrolebinding', 'kubeadm:node-autoapprove-bootstrap', '--type=json', '-p',
    '[{"op":"replace","path":"/subjects/0/name","value":"system:bootstrappers:other"}]']);
  const third = await runCli(['cluster', 'rbac', ...admin]);
  t.match(third.output, /clusterrolebinding\/kubeadm:node-autoapprove-bootstrap updated/);
});

t.test('cluster init, then a node bootstraps with the kubeconfig it wrote', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'bootstrap.kubeconfig');
  const init = await runCli(['cluster', 'init', ...admin, '--out', out, '--ttl', '2h', '--description', 'e2e']);
  t.equal(init.code, 0, init.output);
  t.match(init.output, /nothing to change[\s\S]*created bootstrap token [a-z0-9]{6}, expires \d{4}-/);
  t.equal((await fs.stat(out)).mode & 0o777, 0o600);
  const kc = parse(await fs.readFile(out, 'utf8')) as { clusters: Array<{ cluster: { server: string } }>; users: Array<{ user: { token: string } }> };
  t.equal(kc.clusters[0]?.cluster.server, cp.server);
  t.match(kc.users[0]?.user.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  t.notMatch(init.output, new RegExp(kc.users[0]!.user.token.split('.')[1]!), 'the token secret is not printed');
  const node = await runCli(['run', '--once', '--bootstrap-kubeconfig', out, '--kubeconfig', path.join(dir, 'kubeconfig'), '--cert-dir', path.join(dir, 'pki'), '--node-name', 'init-node']);
  t.equal(node.code, 0, node.output);
  t.equal(await whoami(path.join(dir, 'kubeconfig')), 'system:node:init-node');
});

t.test('offline: cluster init --dry-run with no kubeconfig prints manifests that the real API server takes, and a kubeconfig that bootstraps', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'never-written.kubeconfig');
  const dry = await runCli(['cluster', 'init', '--dry-run', '-o', 'json', '--server', cp.server, '--ca', cp.caPath, '--out', out]);
  t.equal(dry.code, 0, dry.output);
  const list = JSON.parse(dry.stdout) as { items: Array<{ kind: string }> };
  t.same(list.items.map((i) => i.kind), ['ClusterRoleBinding', 'ClusterRoleBinding', 'ClusterRoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Role', 'RoleBinding', 'Secret', 'Config']);
  await t.rejects(fs.stat(out), 'a dry run writes no file');
  const manifests = list.items.filter((i) => i.kind !== 'Config');
  await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }) });
  const bootstrap = path.join(dir, 'bootstrap.kubeconfig');
  await fs.writeFile(bootstrap, JSON.stringify(list.items.find((i) => i.kind === 'Config')), { mode: 0o600 });
  const node = await runCli(['run', '--once', '--bootstrap-kubeconfig', bootstrap, '--kubeconfig', path.join(dir, 'kubeconfig'), '--cert-dir', path.join(dir, 'pki'), '--node-name', 'offline-node']);
  t.equal(node.code, 0, node.output);
  t.equal(await whoami(path.join(dir, 'kubeconfig')), 'system:node:offline-node');
  const token = await runCli(['token', 'create', '--dry-run', '-o', 'yaml']);
  t.equal(token.code, 0, token.output);
  await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: token.stdout });
});

t.test('token create / list / delete, and kubeconfig bootstrap from a token file', async (t) => {
  const dir = await tempDir(t);
  const created = await runCli(['token', 'create', ...admin, '--ttl', '1h', '--description', 'rack 7']);
  t.equal(created.code, 0, created.output);
  const token = /^([a-z0-9]{6})\.([a-z0-9]{16})$/m.exec(created.output);
  t.ok(token, 'printed once');
  const [value, id, secret] = [token![0], token![1]!, token![2]!];
  const list = await runCli(['token', 'list', ...admin]);
  t.match(list.output, new RegExp(`^${id}\\s+\\d{4}-\\S+Z\\s+system:bootstrappers:kubeadm:default-node-token\\s+authentication,signing\\s+rack 7$`, 'm'));
  t.notMatch(list.output, new RegExp(secret), 'never the secret');
  const json = JSON.parse((await runCli(['token', 'list', ...admin, '-o', 'json'])).output) as Array<{ id: string; expired: boolean }>;
  t.equal(json.find((r) => r.id === id)?.expired, false);

  await fs.writeFile(path.join(dir, 'token'), value + '\n', { mode: 0o600 });
  const kb = await runCli(['kubeconfig', 'bootstrap', '--server', cp.server, '--ca', cp.caPath, '--token-file', path.join(dir, 'token'), '--out', path.join(dir, 'b.kubeconfig')]);
  t.equal(kb.code, 0, kb.output);
  const node = ['run', '--once', '--bootstrap-kubeconfig', path.join(dir, 'b.kubeconfig'), '--kubeconfig', path.join(dir, 'kubeconfig'), '--cert-dir', path.join(dir, 'pki'), '--node-name', 'token-node'];
  t.equal((await runCli(node)).code, 0);

  t.equal((await runCli(['token', 'delete', id, ...admin])).code, 0);
  t.notMatch((await runCli(['token', 'list', ...admin])).output, new RegExp(`^${id}`, 'm'));
  await fs.rm(path.join(dir, 'kubeconfig'));
  // kube-apiserver caches token authentication results for 10 s: wait that out.
  await new Promise((r) => setTimeout(r, 11_000));
  const refused = await runCli(node);
  t.equal(refused.code, 2, 'the deleted token no longer authenticates');
  t.match(refused.output, /rejected \(401 Unauthorized\)/);
  const again = await runCli(['token', 'delete', id, ...admin]);
  t.equal(again.code, 2);
  t.match(again.output, new RegExp(`there is no bootstrap token with id ${id}`));
});

t.test('bad input: one line, exit 2', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['token', 'create', ...admin, '--groups', 'admins'], /--groups "admins": extra groups must match system:bootstrappers:/],
    [['token', 'create', ...admin, '--ttl', 'forever'], /--ttl "forever" is not a duration/],
    [['token', 'delete', 'NOPE', ...admin], /token id "NOPE" must be 6 characters/],
    [['kubeconfig', 'bootstrap', '--server', cp.server, '--ca', cp.caPath, '--token', 'short', '--out', path.join(dir, 'x')], /the token must be its 6-character id and 16-character secret/],
    [['kubeconfig', 'bootstrap', '--server', 'http://x', '--ca', cp.caPath, '--token', 'abcdef.0123456789abcdef', '--out', path.join(dir, 'x')], /--server must be an https:\/\/ URL/],
    [['kubeconfig', 'bootstrap', '--server', cp.server, '--ca', '/nonexistent', '--token', 'abcdef.0123456789abcdef', '--out', path.join(dir, 'x')], /--ca: cannot read \/nonexistent: no such file/],
    [['token', 'list', '--kubeconfig', '/nonexistent/admin.conf'], /\/nonexistent\/admin.conf: kubeconfig not found/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.output, re);
    t.equal(r.output.trim().split('\n').length, 1, 'one line');
  }
  // a node's own credentials are not enough to mint tokens
  const node = path.join(dir, 'node');
  const init = await runCli(['cluster', 'init', ...admin, '--out', path.join(node, 'b.kubeconfig')]);
  t.equal(init.code, 0);
  t.equal((await runCli(['run', '--once', '--bootstrap-kubeconfig', path.join(node, 'b.kubeconfig'), '--kubeconfig', path.join(node, 'kubeconfig'), '--cert-dir', path.join(node, 'pki'), '--node-name', 'weak'])).code, 0);
  const denied = await runCli(['token', 'create', '--kubeconfig', path.join(node, 'kubeconfig')]);
  t.equal(denied.code, 2);
  t.match(denied.output, /not allowed .*use a cluster-admin kubeconfig/);
});

t.test('bundle: one archive per node; installed, its config bootstraps the node', async (t) => {
  const dir = await tempDir(t);
  t.equal((await runCli(['cluster', 'rbac', ...admin])).code, 0, 'RBAC in place (idempotent)');
  const archive = path.join(dir, 'lb7.tar.gz');
  const res = await runCli(['bundle', '--node', 'lb7', '--identity', 'haproxy', ...admin, '--out', archive]);
  t.equal(res.code, 0, res.output);
  t.equal((await fs.stat(archive)).mode & 0o777, 0o600);
  const { execFile } = await import('node:child_process');
  const run = (cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> => new Promise((resolve, reject) =>
    execFile(cmd, args, { env: { ...process.env, ...env } }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
  const unpacked = path.join(dir, 'unpacked');
  await fs.mkdir(unpacked);
  await run('tar', ['-xzf', archive, '-C', unpacked]);
  const root = path.join(dir, 'root');
  await run('sh', [path.join(unpacked, 'install.sh')], { DESTDIR: root });
  const etc = path.join(root, 'etc');
  t.equal((await fs.stat(path.join(etc, 'tlsboot/bootstrap-token'))).mode & 0o777, 0o600);
  t.equal((await fs.stat(path.join(etc, 'tlsboot/bootstrap.kubeconfig'))).mode & 0o777, 0o600);
  t.notMatch(await fs.readFile(path.join(etc, 'tlsboot/bootstrap.kubeconfig'), 'utf8'), /token/, 'the token travels apart');
  for (const f of ['systemd/system/tlsboot@.service', 'systemd/system/haproxy.service.d/tlsboot.conf', 'systemd/system/tlsboot@haproxy.service.d/paths.conf']) {
    t.ok(await fs.stat(path.join(etc, f)), f);
  }
  // run the installed config, with its absolute paths moved under the test folder
  const config = (await fs.readFile(path.join(etc, 'tlsboot/haproxy.yaml'), 'utf8'))
    .replaceAll('/etc/tlsboot/', `${etc}/tlsboot/`).replaceAll('/var/lib/tlsboot', `${root}/var/lib/tlsboot`)
    .replaceAll('/etc/haproxy/certs', `${root}/certs`).replace('127.0.0.1:9717', '127.0.0.1:0');
  await fs.writeFile(path.join(etc, 'tlsboot/haproxy.yaml'), config);
  const node = await runCli(['run', '--once', '--config', path.join(etc, 'tlsboot/haproxy.yaml'), '--systemctl', '/bin/true'], { env: { CREDENTIALS_DIRECTORY: path.join(etc, 'tlsboot') } });
  t.equal(node.code, 0, node.output);
  t.equal(await whoami(`${root}/var/lib/tlsboot/haproxy/kubeconfig`), 'system:node:lb7');
  const list = await runCli(['token', 'list', ...admin]);
  t.match(list.output, /tlsboot bundle for lb7/, 'a token minted for this node, labelled');
});
