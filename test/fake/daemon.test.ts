// The daemon (config file, several identities, outputs, hooks, notify, metrics, status) against
// the fake API server; the haproxy and keepalived twins run on the real control plane.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FakeApiServer } from '../support/fakeapi.js';
import { fakeNode, TOKEN, TOKENS } from '../support/fakenode.js';
import { CliProcess, runCli, runInProcess, startNotifyListener, until } from '../support/helpers.js';

function identity(dir: string, bootstrap: string, name: string, extra = ''): string {
  return `  - name: ${name}
    bootstrapKubeconfig: ${bootstrap}
    kubeconfig: ${dir}/${name}/kubeconfig
    certDir: ${dir}/${name}/pki
    nodeName: ${name}
${extra}`;
}

async function writeConfig(dir: string, body: string): Promise<string> {
  const file = path.join(dir, 'config.yaml');
  await fs.writeFile(file, body);
  return file;
}

const exists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);

t.test('outputs: cert, key, ca, combined with their modes, written only when changed', async (t) => {
  const { fake, dir, bootstrap } = await fakeNode(t);
  const out = path.join(dir, 'out');
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'lb1', `    outputs:
      - { type: combined, path: ${out}/client.pem, mode: "0640", owner: root, group: "0" }
      - { type: cert, path: ${out}/cert.pem }
      - { type: key, path: ${out}/key.pem }
      - { type: ca, path: ${out}/ca.pem, mode: "0644" }
`)}`);
  const res = await runInProcess(['run', '--once', '--config', config]);
  t.equal(res.code, 0, res.stderr);
  const mode = async (f: string): Promise<number> => (await fs.stat(path.join(out, f))).mode & 0o777;
  t.equal(await mode('client.pem'), 0o640);
  t.equal(await mode('cert.pem'), 0o644);
  t.equal(await mode('key.pem'), 0o600, 'keys default to 0600');
  t.equal(await mode('ca.pem'), 0o644);
  const read = (f: string): Promise<string> => fs.readFile(path.join(out, f), 'utf8');
  const combined = await read('client.pem');
  t.equal(combined, (await read('cert.pem')).trimEnd() + '\n' + (await read('key.pem')), 'chain, then key');
  t.ok(combined.indexOf('CERTIFICATE') < combined.indexOf('PRIVATE KEY'));
  t.equal(await read('ca.pem'), fake.caPem);
  const inode = (await fs.stat(path.join(out, 'client.pem'))).ino;
  t.equal((await runInProcess(['run', '--once', '--config', config])).code, 0);
  t.equal((await fs.stat(path.join(out, 'client.pem'))).ino, inode, 'unchanged content is not rewritten');
  await fs.chmod(path.join(out, 'client.pem'), 0o666);
  t.equal((await runInProcess(['run', '--once', '--config', config])).code, 0);
  t.equal(await mode('client.pem'), 0o640, 'loosened permissions are put back');
  await t.rejects(import('../../src/daemon/outputs.js').then((m) => m.resolveOutputs([{ type: 'cert', path: '/x', owner: 'no-such-user-here', mode: 0o644 }], 'identity x')),
    { message: /identity x: output \/x: owner "no-such-user-here" does not exist on this machine/ });
});

t.test('hooks: exec with argv and environment, one unit reload for two identities, signal to a pid file', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const log = path.join(dir, 'hook.log');
  const systemctl = path.join(dir, 'systemctl');
  // A recording systemctl: there is no systemd PID 1 in the test sandbox to reload units.
  await fs.writeFile(systemctl, `#!/bin/sh\necho "systemctl $*" >> ${log}\n`, { mode: 0o755 });
  const hook = path.join(dir, 'hook.sh');
  await fs.writeFile(hook, `#!/bin/sh\necho "exec $1 $TLSBOOT_IDENTITY $TLSBOOT_CERT_FILE $TLSBOOT_CHANGED_FILES" >> ${log}\n`, { mode: 0o755 });
  const victim: ChildProcess = spawn(process.execPath, ['-e', `process.on('SIGUSR2', () => { require('fs').appendFileSync(${JSON.stringify(log)}, 'signal SIGUSR2\\n'); }); setInterval(() => {}, 1000);`]);
  t.teardown(() => victim.kill('SIGKILL'));
  await fs.writeFile(path.join(dir, 'victim.pid'), `${victim.pid}\n`);
  await new Promise((r) => setTimeout(r, 300));
  const hooks = `    hooks:\n      - { reloadUnit: haproxy.service }\n      - { exec: ["${hook}", "arg one"] }\n`;
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'a', hooks)}${identity(dir, bootstrap, 'b', `    hooks:\n      - { reloadUnit: haproxy.service }\n      - { pidFile: ${dir}/victim.pid, signal: SIGUSR2 }\n`)}`);
  const res = await runInProcess(['run', '--once', '--config', config, '--systemctl', systemctl]);
  t.equal(res.code, 0, res.stderr);
  const lines = (await fs.readFile(log, 'utf8')).trim().split('\n').sort();
  t.equal(lines.filter((l) => l === 'systemctl try-reload-or-restart haproxy.service').length, 1, 'one reload for both identities');
  t.match(lines.find((l) => l.startsWith('exec')), new RegExp(`^exec arg one a ${dir}/a/pki/kubelet-client-\\d{4}.*\\.pem ${dir}/a/pki/kubelet-client-`));
  t.ok(lines.includes('signal SIGUSR2'));
  // a second run has nothing new: no hooks
  t.equal((await runInProcess(['run', '--once', '--config', config, '--systemctl', systemctl])).code, 0);
  t.equal((await fs.readFile(log, 'utf8')).trim().split('\n').length, lines.length, 'hooks run only when the certificate changed');
});

t.test('a failing hook is retried, reported in status and STATUS, and does not block', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const flag = path.join(dir, 'fixed');
  const hook = path.join(dir, 'hook.sh');
  await fs.writeFile(hook, `#!/bin/sh\n[ -e ${flag} ] || { echo "haproxy is not happy" >&2; exit 7; }\n`, { mode: 0o755 });
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'lb', `    hooks:\n      - { exec: ["${hook}"] }\n      - { exec: ["/bin/sleep", "5"], timeoutSeconds: 0.5 }\n`)}`);
  const listener = await startNotifyListener(t, path.join(dir, 'notify.sock'));
  const p = new CliProcess(['run', '--config', config], { NOTIFY_SOCKET: path.join(dir, 'notify.sock') });
  t.teardown(() => p.stop('SIGKILL'));
  await p.waitFor(/ready: every identity has a valid certificate/);
  await p.waitFor(/hook failed; will retry.*haproxy is not happy/);
  await p.waitFor(/hook failed; will retry.*\/bin\/sleep timed out after 0.5 s/);
  await until('STATUS with the failing hook', () => listener.lines.some((l) => /STATUS=.*2 hook\(s\) failing: exec .*hook.sh \(lb\)/.test(l)));
  const status = await runCli(['status', '--config', config]);
  t.equal(status.code, 1, status.output);
  const json = await runCli(['status', '--config', config, '--json']);
  const parsed = JSON.parse(json.output) as { identities: Array<{ state: string; hookFailures: Array<{ lastError: string }> }> };
  t.equal(parsed.identities[0]?.state, 'hook-failing');
  t.match(parsed.identities[0]?.hookFailures.map((h) => h.lastError).join(' '), /exited with 7: haproxy is not happy/);
  await fs.writeFile(flag, '');
  await p.waitFor(/hook ran.*hook.sh/, 15_000);
  t.equal(await p.stop('SIGTERM'), 0);
});

t.test('under --once a failing hook runs once and makes the exit code 1, without waiting', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'o1', '    hooks:\n      - { exec: ["/bin/false"] }\n')}`);
  const start = Date.now();
  const res = await runInProcess(['run', '--once', '--config', config]);
  t.equal(res.code, 1);
  t.match(res.stderr, /hook failed hook="exec \/bin\/false" identity=o1 error="\/bin\/false exited with 1" attempt=1\n/);
  t.ok(Date.now() - start < 10_000, 'no retry loop');
  t.ok(await exists(path.join(dir, 'o1/pki/kubelet-client-current.pem')), 'the certificate is in place all the same');
});

for (const kind of ['path', 'abstract'] as const) {
  t.test(`sd_notify over a real AF_UNIX socket (${kind}): READY only with a cert, WATCHDOG, RELOADING, STOPPING`, async (t) => {
    const { fake, dir, bootstrap } = await fakeNode(t, { autoApprove: false });
    const socket = kind === 'path' ? path.join(dir, 'notify.sock') : `@tlsboot-test-${process.pid}-${Date.now()}`;
    const listener = await startNotifyListener(t, socket);
    const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'n1')}`);
    const p = new CliProcess(['run', '--config', config], { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' });
    t.teardown(() => p.stop('SIGKILL'));
    await until('the CSR', () => fake.csrs.size === 1 && fake.watcherCount() === 1);
    await until('a watchdog ping', () => listener.lines.some((l) => l === 'WATCHDOG=1'));
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(listener.lines.some((l) => l.includes('READY=1')), 'not ready while the CSR is pending');
    t.ok(listener.lines.some((l) => /STATUS=1 of 1 identities without a certificate/.test(l)));
    fake.approve([...fake.csrs.keys()][0]!);
    await until('READY=1', () => listener.lines.some((l) => l.startsWith('READY=1')));
    t.match(listener.lines.find((l) => l.startsWith('READY=1')), /STATUS=expires \d{4}-.*\(n1\); next rotation \d{4}-.*\(n1\)/);
    t.ok(await exists(path.join(dir, 'n1/pki/kubelet-client-current.pem')), 'the certificate was on disk before READY');

    // an invalid config on SIGHUP keeps the old one
    await fs.writeFile(config, 'identities: nope\n');
    p.child.kill('SIGHUP');
    await p.waitFor(/the new configuration is invalid; keeping the running one.*identities must be a non-empty list/);
    // a valid one reloads: RELOADING=1, then READY=1 again
    const readyBefore = listener.lines.filter((l) => l.startsWith('READY=1')).length;
    await fs.writeFile(config, `identities:\n${identity(dir, bootstrap, 'n1')}`);
    p.child.kill('SIGHUP');
    await until('RELOADING=1', () => listener.lines.some((l) => l.startsWith('RELOADING=1|MONOTONIC_USEC=')));
    await until('READY=1 after reload', () => listener.lines.filter((l) => l.startsWith('READY=1')).length > readyBefore);
    const reloadAt = listener.lines.findIndex((l) => l.startsWith('RELOADING=1'));
    t.ok(listener.lines.slice(reloadAt).some((l) => l.startsWith('READY=1')), 'READY=1 follows RELOADING=1');
    t.equal(await p.stop('SIGTERM'), 0);
    await until('STOPPING=1', () => listener.lines.some((l) => l.startsWith('STOPPING=1')));
  });
}

t.test('an output removed or changed by hand is restored; metrics and health endpoints', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const out = path.join(dir, 'out', 'client.pem');
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'w1', `    outputs:\n      - { type: combined, path: ${out} }\n`)}metrics: { address: "127.0.0.1:0" }\n`);
  const p = new CliProcess(['run', '--config', config]);
  t.teardown(() => p.stop('SIGKILL'));
  const port = Number((await p.waitFor(/serving metrics .*port=(\d+)/))[1]);
  await p.waitFor(/ready: every identity/);
  const good = await fs.readFile(out, 'utf8');
  await fs.rm(out);
  await until('restored after delete', () => exists(out), 10_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${p.output}`);
  });
  await fs.writeFile(out, 'tampered');
  await until('restored after change', async () => (await fs.readFile(out, 'utf8').catch(() => '')) === good, 10_000);
  t.match(p.output, /restored an output that was changed or removed/);
  const get = async (p: string): Promise<{ status: number; body: string }> => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: r.status, body: await r.text() };
  };
  const metrics = await get('/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.body, /tlsboot_certificate_ttl_seconds\{identity="w1"\} 3153\d{4}/);
  t.match(metrics.body, /tlsboot_rotations_total\{identity="w1"\} 1/);
  t.match(metrics.body, /tlsboot_next_rotation_timestamp_seconds\{identity="w1"\} \d+/);
  t.match(metrics.body, /tlsboot_csr_issuance_seconds_count\{identity="w1"\} 1/);
  t.equal((await get('/healthz')).status, 200);
  t.equal((await get('/readyz')).status, 200);
  t.equal(await p.stop('SIGTERM'), 0);
});

t.test('status: ok, expired (exit 2), missing (exit 2)', async (t) => {
  const { dir, bootstrap } = await fakeNode(t, { signingDurationSeconds: 30 });
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 's1')}`);
  const missing = await runCli(['status', '--config', config]);
  t.equal(missing.code, 2);
  t.match(missing.output, /s1: missing/);
  t.equal((await runInProcess(['run', '--once', '--config', config])).code, 0);
  const ok = await runInProcess(['status', '--config', config]);
  t.equal(ok.code, 1, 'a 30 s certificate is in its last 10 % at once: expiring');
  t.match(ok.stdout, /s1: expiring\n {2}file: {10}.*kubelet-client-current.pem\n {2}subject: {7}CN=system:node:s1, O=system:nodes\n {2}issuer: {8}CN=fake-kubernetes-ca/);
  await new Promise((r) => setTimeout(r, 31_000));
  const expired = await runInProcess(['status', '--config', config]);
  t.equal(expired.code, 2);
  t.match(expired.stdout, /s1: expired/);
});

t.test('one identity denied ends the daemon with exit 3; the other\'s files stay', async (t) => {
  const { fake, dir, bootstrap } = await fakeNode(t);
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'good')}${identity(dir, bootstrap, 'lb',
    '    signerName: kubernetes.io/kube-apiserver-client\n    subject: { commonName: haproxy }\n    filePrefix: haproxy-client\n')}`);
  const p = new CliProcess(['run', '--config', config]);
  t.teardown(() => p.stop('SIGKILL'));
  await until('both CSRs', () => fake.csrs.size === 2 && [...fake.csrs.values()].some((c) => c.status?.certificate));
  await p.waitFor(/client certificate issued and written identity=good/);
  t.notMatch(p.output, /ready: every identity/, 'not ready while lb is pending');
  const pending = [...fake.csrs.values()].find((c) => !c.status?.certificate)!;
  fake.deny(pending.metadata.name!, 'NotInInventory', 'lb is not a known load balancer');
  t.equal(await p.exited, 3);
  t.match(p.output, /identity stopped: it needs attention identity=lb error=".*was denied \(reason: NotInInventory/);
  t.ok(await exists(path.join(dir, 'good/pki/kubelet-client-current.pem')));
});

t.test('a new bootstrap token is used from the next attempt; errors are counted by reason', async (t) => {
  const { dir } = await fakeNode(t);
  const fake = await FakeApiServer.start({ tokens: TOKENS });
  t.teardown(() => fake.stop());
  const bootstrap = await fake.writeBootstrapKubeconfig(path.join(dir, 'b2.kubeconfig'), 'qqqqqq.0123456789abcdef', { tokenFile: true });
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 't1', `    bootstrapTokenFile: ${dir}/creds/token\n`)}metrics: { address: "127.0.0.1:0" }\n`);
  await fs.mkdir(path.join(dir, 'creds'));
  await fs.writeFile(path.join(dir, 'creds/token'), 'yyyyyy.0123456789abcdef\n'); // unknown to the server
  const p = new CliProcess(['run', '--config', config]);
  t.teardown(() => p.stop('SIGKILL'));
  const port = Number((await p.waitFor(/serving metrics .*port=(\d+)/))[1]);
  await p.waitFor(/could not get a certificate; retrying.*were rejected \(401 Unauthorized\)/);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, /tlsboot_rotation_errors_total\{identity="t1",reason="Unauthorized"\} [1-9]/);
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
  await fs.writeFile(path.join(dir, 'creds/token'), `${TOKEN}\n`);
  await p.waitFor(/bootstrap credentials changed; they are used from the next attempt/);
  await p.waitFor(/ready: every identity has a valid certificate/, 30_000);
  t.equal([...fake.csrs.values()][0]?.spec.username, 'system:bootstrap:abcdef', 'the new token from the credential file');
  t.notMatch(p.output, /0123456789abcdef/, 'no token in the logs');
  t.equal(await p.stop('SIGTERM'), 0);
});

t.test('editing the config file reloads it: a new identity appears', async (t) => {
  const { dir, bootstrap } = await fakeNode(t);
  const config = await writeConfig(dir, `identities:\n${identity(dir, bootstrap, 'e1')}`);
  const p = new CliProcess(['run', '--config', config]);
  t.teardown(() => p.stop('SIGKILL'));
  await p.waitFor(/ready: every identity/);
  await fs.writeFile(config, `identities:\n${identity(dir, bootstrap, 'e1')}${identity(dir, bootstrap, 'e2')}`);
  await p.waitFor(/the config file changed; reloading[\s\S]*client certificate issued and written identity=e2/, 20_000);
  t.ok(await exists(path.join(dir, 'e2/pki/kubelet-client-current.pem')));
  t.equal(await p.stop('SIGTERM'), 0);
});
