// The examples for real: haproxy in front of the real kube-apiserver presenting tlsboot's
// combined output as its client certificate, reloaded by tlsboot's hook after a rotation; and
// keepalived's health check script and config.
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { freePort } from '../controlplane/controlplane.js';
import { startPlane, startTlsboot, until } from '../support/e2e.js';
import { ROOT, runCli, tempDir } from '../support/helpers.js';

const run = promisify(execFile);
const cp = await startPlane(t);
const example = (p: string): Promise<string> => fs.readFile(path.join(ROOT, 'examples', p), 'utf8');

/** The identity the API server sees for a request through haproxy, and the certificate's hash. */
async function whoami(port: number): Promise<{ username: string; credential: string } | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
  }).catch(() => undefined);
  if (!res || res.status !== 201) return undefined;
  const body = (await res.json()) as { status: { userInfo: { username: string; extra?: Record<string, string[]> } } };
  return { username: body.status.userInfo.username, credential: body.status.userInfo.extra?.['authentication.kubernetes.io/credential-id']?.[0] ?? '' };
}

const fingerprint = (pem: string): string => `X509SHA256=${new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase()}`;

t.test('haproxy presents tlsboot\'s certificate to kube-apiserver and is reloaded after a rotation', async (t) => {
  const dir = await tempDir(t, 'tlsboot-haproxy-');
  const token = await cp.createToken();
  await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), 'unused.0000000000000000');
  await fs.mkdir(path.join(dir, 'creds'));
  await fs.writeFile(path.join(dir, 'creds', 'bootstrap-token'), token.value + '\n', { mode: 0o600 });
  const pidFile = path.join(dir, 'haproxy.pid');
  const config = (await example('haproxy/haproxy.yaml'))
    .replaceAll('/etc/tlsboot/', `${dir}/`).replaceAll('/var/lib/tlsboot/haproxy', `${dir}/state`)
    .replaceAll('/etc/haproxy/certs', `${dir}/certs`)
    .replace('{ reloadUnit: haproxy.service }', `{ pidFile: ${pidFile}, signal: SIGUSR2 }`) // no systemd PID 1 here
    .replace('127.0.0.1:9717', '127.0.0.1:0');
  await fs.writeFile(path.join(dir, 'haproxy.yaml'), config);
  // the token comes from $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= provides it
  const tlsboot = startTlsboot(t, ['run', '--config', path.join(dir, 'haproxy.yaml')], { CREDENTIALS_DIRECTORY: path.join(dir, 'creds') });
  await tlsboot.waitFor(/ready: every identity has a valid certificate on disk/);
  const combined = path.join(dir, 'certs', 'apiserver-client.pem');
  const st = await fs.stat(combined);
  t.equal(st.mode & 0o777, 0o640);
  const { stdout: group } = await run('getent', ['group', 'haproxy']);
  t.equal(st.gid, Number(group.split(':')[2]), 'group haproxy, as configured');

  const port = await freePort();
  const cfg = (await example('haproxy/haproxy.cfg'))
    .replace('127.0.0.1:8443', `127.0.0.1:${port}`).replace('10.0.0.10:6443', `127.0.0.1:${cp.ports.apiserver}`)
    .replaceAll('/etc/haproxy/certs', `${dir}/certs`);
  await fs.writeFile(path.join(dir, 'haproxy.cfg'), cfg);
  await run('haproxy', ['-c', '-f', path.join(dir, 'haproxy.cfg')]);
  const haproxy = spawn('haproxy', ['-W', '-f', path.join(dir, 'haproxy.cfg'), '-p', pidFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let hlog = '';
  haproxy.stdout.on('data', (d: Buffer) => (hlog += d.toString()));
  haproxy.stderr.on('data', (d: Buffer) => (hlog += d.toString()));
  t.teardown(() => {
    haproxy.kill('SIGKILL');
    if (!t.passing()) t.comment(`haproxy:\n${hlog}`);
  });

  const first = await until('a request through haproxy', () => whoami(port));
  t.equal(first.username, 'system:node:lb1', 'the API server sees tlsboot\'s identity');
  t.equal(first.credential, fingerprint(await fs.readFile(combined, 'utf8')));

  tlsboot.child.kill('SIGUSR1');
  await tlsboot.waitFor(/rotating now on request[\s\S]*hook ran.*SIGUSR2/, 60_000);
  const rotated = fingerprint(await fs.readFile(combined, 'utf8'));
  t.not(rotated, first.credential, 'a new certificate in the combined output');
  const second = await until('the new certificate presented', async () => {
    const w = await whoami(port);
    return w?.credential === rotated ? w : undefined;
  }, 30_000);
  t.equal(second.username, 'system:node:lb1');
  t.equal(await tlsboot.stop('SIGTERM'), 0);
});

t.test('keepalived: the health check script uses the certificate; the config passes keepalived --config-test', async (t) => {
  const dir = await tempDir(t, 'tlsboot-keepalived-');
  const token = await cp.createToken();
  await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), token.value);
  const config = (await example('keepalived/keepalived.yaml'))
    .replaceAll('/etc/tlsboot/', `${dir}/`).replaceAll('/var/lib/tlsboot/keepalived', `${dir}/state`)
    .replace(/ {4}bootstrapTokenFile: .*\n/, '');
  await fs.writeFile(path.join(dir, 'keepalived.yaml'), config);
  const res = await runCli(['run', '--once', '--config', path.join(dir, 'keepalived.yaml')]);
  t.equal(res.code, 0, res.output);
  const script = path.join(ROOT, 'examples/keepalived/check_apiserver.sh');
  const env = { ...process.env, APISERVER: cp.server, CERT: `${dir}/state/out/client.pem`, CA: `${dir}/state/out/ca.pem` };
  await t.resolves(run(script, [], { env }), 'the check passes with tlsboot\'s certificate');
  // a certificate the cluster did not issue is refused, so the check fails
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=system:node:lb1',
    '-keyout', `${dir}/foreign.pem`, '-out', `${dir}/foreign.crt`]);
  await fs.appendFile(`${dir}/foreign.pem`, await fs.readFile(`${dir}/foreign.crt`));
  await t.rejects(run(script, [], { env: { ...env, CERT: `${dir}/foreign.pem` } }), { message: /401/ }, 'a foreign certificate is refused');
  const conf = (await example('keepalived/keepalived.conf')).replace('/etc/keepalived/check_apiserver.sh', script);
  await fs.writeFile(path.join(dir, 'keepalived.conf'), conf);
  const { stderr } = await run('keepalived', ['--config-test', '-f', path.join(dir, 'keepalived.conf')]);
  t.equal(stderr.trim(), '', 'no complaints');
});
