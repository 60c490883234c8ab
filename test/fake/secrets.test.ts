// Secrets never leave their files: every command's failure paths run with a known bootstrap
// token and a known private key, and neither may appear in stdout, stderr (the log), the state
// files, the metrics, the process's own argv (/proc/<pid>/cmdline) or the argv of what it runs
// (systemd-notify, whose arguments every local user can read).
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { FakeApiServer } from '../support/fakeapi.js';
import { TOKEN, TOKENS } from '../support/fakenode.js';
import { CliProcess, runCli, tempDir } from '../support/helpers.js';

const SECRET = TOKEN.split('.')[1]!;
const fake = await FakeApiServer.start({ tokens: TOKENS, autoApprove: false });
t.teardown(() => fake.stop());
const admin = await fake.issueClientCert('kubernetes-admin', ['system:masters']);
const keyFragments = admin.keyPem.replace(/-----[A-Z ]+-----|\s/g, '').match(/.{20}/g) ?? [];
const dir = await tempDir(t, 'tlsboot-secrets-');

function assertClean(t: Test, text: string, where: string): void {
  t.notOk(text.includes(SECRET), `${where}: no token secret`);
  t.notOk(text.includes(TOKEN), `${where}: no token`);
  t.notOk(keyFragments.some((f) => text.includes(f)), `${where}: no private key material`);
}

const closedPort = async (): Promise<number> => {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
};
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const kubeconfig = async (name: string, server: string, user: string): Promise<string> => {
  const file = path.join(dir, name);
  await fs.writeFile(file, [
    'apiVersion: v1', 'kind: Config',
    `clusters: [{name: c, cluster: {server: "${server}", certificate-authority-data: ${b64(fake.caPem)}}}]`,
    `users: [{name: u, user: ${user}}]`, 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', '',
  ].join('\n'), { mode: 0o600 });
  return file;
};

const down = `https://127.0.0.1:${await closedPort()}`;
const tokenUser = `{token: ${TOKEN}}`;
const certUser = `{client-certificate-data: ${b64(admin.certPem)}, client-key-data: ${b64(admin.keyPem)}}`;
const bootstrapDown = await kubeconfig('bootstrap-down.kubeconfig', down, tokenUser);
const bootstrapUp = await kubeconfig('bootstrap-up.kubeconfig', fake.url, tokenUser);
const bootstrapTagged = await kubeconfig('bootstrap-tagged.kubeconfig', down, `{token: !secret ${TOKEN}}`);
const rejected = await kubeconfig('bootstrap-rejected.kubeconfig', fake.url, '{token: "qqqqqq.0123456789abcdef"}');
const adminDown = await kubeconfig('admin-down.kubeconfig', down, certUser);
const adminUp = await kubeconfig('admin-up.kubeconfig', fake.url, certUser);
const tokenFile = path.join(dir, 'token');
await fs.writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
const ca = path.join(dir, 'ca.crt');
await fs.writeFile(ca, fake.caPem);
await fs.writeFile(path.join(dir, 'policy.yaml'), `rules: [{name: r, signerName: example.com/x, requesters: {users: [${TOKEN}]}}]\n`);
const node = (name: string): string[] => ['--kubeconfig', path.join(dir, name, 'kubeconfig'), '--cert-dir', path.join(dir, name, 'pki'), '--node-name', name];

const failures: Array<[string, string[]]> = [
  ['run: server unreachable', ['run', '--once', '--retry-timeout', '1s', '--bootstrap-kubeconfig', bootstrapDown, ...node('n1')]],
  ['run: a YAML tag on the token', ['run', '--once', '--retry-timeout', '1s', '--bootstrap-kubeconfig', bootstrapTagged, ...node('n2')]],
  ['run: token rejected', ['run', '--once', '--bootstrap-kubeconfig', rejected, ...node('n3')]],
  ['run: never approved', ['run', '--once', '--approval-timeout', '1s', '--bootstrap-kubeconfig', bootstrapUp, ...node('n4')]],
  ['run: the token as a flag value by mistake', ['run', '--once', '--kubeconfig', path.join(dir, 'x'), '--node-name', TOKEN]],
  ['status', ['status', ...node('n1')]],
  ['doctor: unreachable', ['doctor', '--bootstrap-kubeconfig', bootstrapDown, ...node('n5')]],
  ['doctor: token rejected', ['doctor', '--bootstrap-kubeconfig', rejected, ...node('n6')]],
  ['token create', ['token', 'create', '--kubeconfig', adminDown]],
  ['token list', ['token', 'list', '--kubeconfig', adminDown]],
  ['token delete', ['token', 'delete', 'abcdef', '--kubeconfig', adminDown]],
  ['cluster rbac', ['cluster', 'rbac', '--kubeconfig', adminDown]],
  ['cluster init', ['cluster', 'init', '--kubeconfig', adminDown, '--out', path.join(dir, 'init.kubeconfig')]],
  ['cluster approver', ['cluster', 'approver', '--kubeconfig', adminDown, '--policy', path.join(dir, 'policy.yaml')]],
  ['kubeconfig bootstrap: bad CA', ['kubeconfig', 'bootstrap', '--server', down, '--ca', tokenFile, '--token-file', tokenFile, '--out', path.join(dir, 'b.kubeconfig')]],
  ['bundle: unreachable', ['bundle', '--node', 'n7', '--kubeconfig', adminDown, '--out', path.join(dir, 'bundle')]],
  ['bundle: a token file with a bad CA', ['bundle', '--node', 'n8', '--token-file', tokenFile, '--server', down, '--ca', path.join(dir, 'nonexistent'), '--out', path.join(dir, 'bundle2')]],
  ['approve: unreachable', ['approve', '--kubeconfig', adminDown, '--policy', path.join(dir, 'policy.yaml'), '--once']],
  ['approve: a policy naming the token', ['approve', '--kubeconfig', adminUp, '--policy', path.join(dir, 'policy.yaml'), '--once']],
];
for (const [what, args] of failures) {
  t.test(`${what}: fails, and prints no secret`, async (t) => {
    const r = await runCli(args, { timeoutMs: 60_000 });
    t.not(r.code, 0, r.output);
    assertClean(t, r.output, 'stdout and stderr');
  });
}

t.test('the daemon while failing: argv, the notify messages, state files and metrics hold no secret', async (t) => {
  // systemd-notify is a stub that records its arguments: what `ps` would show of it.
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  const record = path.join(dir, 'notify-args');
  await fs.writeFile(path.join(bin, 'systemd-notify'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${record}'\n`, { mode: 0o755 });
  const p = new CliProcess(['run', '-v', '1', '--bootstrap-kubeconfig', bootstrapDown, '--metrics-address', '127.0.0.1:0', ...node('d1')],
    { NOTIFY_SOCKET: path.join(dir, 'notify.sock'), PATH: `${bin}:${process.env['PATH'] ?? ''}` });
  t.teardown(() => p.stop('SIGKILL'));
  const port = Number((await p.waitFor(/serving metrics .*port=(\d+)/))[1]);
  await p.waitFor(/attempt failed[\s\S]*attempt failed/, 30_000);
  assertClean(t, (await fs.readFile(`/proc/${p.child.pid}/cmdline`, 'utf8')).replace(/\0/g, ' '), 'argv');
  const metrics = await new Promise<string>((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}/metrics`, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  t.match(metrics, /tlsboot_rotation_errors_total/);
  assertClean(t, metrics, 'metrics');
  t.equal(await p.stop(), 0);
  assertClean(t, p.output, 'the log');
  assertClean(t, await fs.readFile(record, 'utf8'), 'systemd-notify arguments');
  const state = await fs.readFile(path.join(dir, 'd1', 'pki', '.kubelet-client.state.json'), 'utf8');
  t.match(state, /lastError/);
  assertClean(t, state, 'the state file');
});
