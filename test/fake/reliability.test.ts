// Defects found by the fault hunt (reliability issue), each against a real tlsboot process: a
// token behind a YAML tag, --once against a server that never answers, SIGTERM, a token with a
// control character, paths under a regular file, a warning said twice.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { fakeNode, TOKEN } from '../support/fakenode.js';
import { CliProcess, listDir, runCli, tempDir } from '../support/helpers.js';

const SECRET = TOKEN.split('.')[1]!;

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function kubeconfigFor(dir: string, server: string, user: string): Promise<string> {
  const file = path.join(dir, 'bootstrap.kubeconfig');
  await fs.writeFile(file, [
    'apiVersion: v1', 'kind: Config',
    `clusters: [{name: c, cluster: {server: "${server}"}}]`,
    `users: [{name: u, user: ${user}}]`,
    'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', '',
  ].join('\n'), { mode: 0o600 });
  return file;
}

const nodeArgs = (dir: string, bootstrap: string, ...extra: string[]): string[] => [
  'run', '--kubeconfig', path.join(dir, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(dir, 'pki'), '--node-name', 'n1', ...extra,
];

t.test('a YAML tag on the token line: one redacted warning naming the file, never the token (run and doctor)', async (t) => {
  const dir = await tempDir(t);
  const bootstrap = await kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`, `{token: !secret ${TOKEN}}`);
  const run = await runCli(nodeArgs(dir, bootstrap, '--once', '--retry-timeout', '3s'));
  t.equal(run.code, 1, run.output);
  t.notMatch(run.output, SECRET, 'the token secret is nowhere in the output');
  const warnings = run.output.split('\n').filter((l) => /Unresolved tag/.test(l));
  t.equal(warnings.length, 1, 'one line, though the file is read on every attempt');
  t.match(warnings[0], new RegExp(`WARN .*${bootstrap}: Unresolved tag: !secret at line 4, column 33$`));
  const doctor = await runCli(['doctor', '--kubeconfig', path.join(dir, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(dir, 'pki'), '--node-name', 'n1']);
  t.notMatch(doctor.output, SECRET);
  t.match(doctor.output, /Unresolved tag/);
});

t.test('--once gives up on an unreachable server after --retry-timeout, with the last error, exit 1', async (t) => {
  const dir = await tempDir(t);
  const bootstrap = await kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`, `{token: ${TOKEN}}`);
  const started = Date.now();
  const r = await runCli(nodeArgs(dir, bootstrap, '--once', '--retry-timeout', '4s'));
  const took = Date.now() - started;
  t.equal(r.code, 1);
  t.match(r.output, /ERROR gave up after \d+ attempts in 4s \(--retry-timeout\): cannot reach https:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  t.ok(took >= 4000 && took < 30_000, `stopped after the timeout (${took} ms), not never`);
  t.match(await runCli(['run', '--help']).then((h) => h.output), /--retry-timeout[\s\S]*\[default: "5m"\]/, 'a default of a few minutes');
});

t.test('SIGTERM is a clean stop: under --once (exit 143) and as a daemon (exit 0), with no ERROR line', async (t) => {
  const dir = await tempDir(t);
  const bootstrap = await kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`, `{token: ${TOKEN}}`);
  for (const [mode, extra, code] of [['--once', ['--once'], 143], ['daemon', [], 0]] as const) {
    const p = new CliProcess(nodeArgs(dir, bootstrap, ...extra));
    await p.waitFor(/could not get a certificate; retrying/);
    t.equal(await p.stop('SIGTERM'), code, mode);
    t.notMatch(p.output, /ERROR/, `${mode}: no error reported`);
    t.notMatch(p.output, /operation was aborted/);
    t.match(p.output, /INFO  stopped/);
  }
});

t.test('a token with a control character is a configuration error naming the field (exit 2), not a network error', async (t) => {
  const { fake, dir } = await fakeNode(t);
  const bootstrap = await kubeconfigFor(dir, fake.url, `{token: "abcdef.0123456789\\x01abcdef"}`);
  await fs.writeFile(bootstrap, (await fs.readFile(bootstrap, 'utf8')).replace('{server:', `{certificate-authority-data: ${Buffer.from(fake.caPem).toString('base64')}, server:`));
  const r = await runCli(nodeArgs(dir, bootstrap, '--once'));
  t.equal(r.code, 2, r.output);
  t.match(r.output, /users\[u\]\.user\.token is empty, or holds white space or control characters/);
  t.notMatch(r.output, /cannot reach|UND_ERR/);
  // the same through a token file
  const tokenFile = path.join(dir, 'token');
  await fs.writeFile(tokenFile, `abcdef.\u00070123456789abcdef\n`);
  const viaFile = await kubeconfigFor(dir, fake.url, `{tokenFile: ${tokenFile}}`);
  const f = await runCli(nodeArgs(dir, viaFile, '--once'));
  t.equal(f.code, 2, f.output);
  t.match(f.output, /tokenFile \(.*token\) is empty, or holds white space or control characters/);
  t.equal(fake.csrs.size, 0, 'nothing was sent');
});

t.test('a cert dir or kubeconfig under a regular file: one line naming the setting, exit 2, no key made', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const file = path.join(dir, 'a-file');
  await fs.writeFile(file, 'not a folder');
  const pki = path.join(dir, 'pki');
  const certDir = await runCli(['run', '--once', '--kubeconfig', path.join(dir, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(file, 'pki')]);
  t.equal(certDir.code, 2);
  t.match(certDir.output, new RegExp(`ERROR --cert-dir ${file}/pki: ${file} is a file, not a folder; choose another --cert-dir\\n$`));
  const kc = await runCli(['run', '--once', '--kubeconfig', path.join(file, 'x', 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', pki]);
  t.equal(kc.code, 2);
  t.match(kc.output, new RegExp(`ERROR --kubeconfig ${file}/x/kubeconfig: ${file} is a file, not a folder; choose another --kubeconfig\\n$`));
  t.same(await listDir(pki), [], 'no key was generated');
});

t.test('a bad flag value is refused before any key is generated', async (t) => {
  const { args, pki } = await fakeNode(t);
  const r = await runCli(args('--ip-address', '999.1.1.1'));
  t.equal(r.code, 2);
  t.match(r.output, /--ip-address "999\.1\.1\.1" is not an IPv4 or IPv6 address/);
  t.same(await listDir(pki), []);
});

t.test('an unusable kubeconfig is reported once per attempt cycle, not twice', async (t) => {
  const dir = await tempDir(t);
  const bootstrap = await kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`, `{token: ${TOKEN}}`);
  await fs.writeFile(path.join(dir, 'kubeconfig'), 'not: [a kubeconfig');
  const r = await runCli(nodeArgs(dir, bootstrap, '--once', '--retry-timeout', '3s'));
  t.equal(r.code, 1);
  t.equal(r.output.split('\n').filter((l) => /ignoring the unusable kubeconfig/.test(l)).length, 1, r.output);
});
