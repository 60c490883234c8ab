// The single executable as a user gets it (make package): copied alone into an empty folder and
// started with an empty environment, on this machine's architecture and on arm64 under qemu-user,
// against the real control plane.
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { parseChain } from '../../src/pki/certs.js';
import { makeNode, startPlane } from '../support/e2e.js';
import { tempDir } from '../support/helpers.js';
import { CLI, EXECUTABLE, ROOT, VERSION } from '../support/paths.js';

const pexec = promisify(execFile);
const ARM64 = path.join(ROOT, 'dist', `tlsboot-${VERSION}-linux-arm64`);
const QEMU = ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'];
const EMBEDDED = (JSON.parse(await fs.readFile(path.join(ROOT, 'packaging', 'node-runtime.json'), 'utf8')) as { version: string }).version;

for (const f of [EXECUTABLE, ARM64]) if (!existsSync(f)) throw new Error(`${f} is missing: run "make package" first`);

interface Result { code: number; stdout: string; stderr: string }
/** Run a command with an empty environment (env -i) in `cwd`; never throws. */
async function bare(cwd: string, argv: string[], timeoutMs = 120_000): Promise<Result> {
  try {
    const r = await pexec('env', ['-i', ...argv], { cwd, timeout: timeoutMs });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A folder holding the executable alone, named tlsboot. */
async function alone(t: Test, exe: string): Promise<string> {
  const dir = await tempDir(t, 'tlsboot-exe-');
  await fs.copyFile(exe, path.join(dir, 'tlsboot'));
  await fs.chmod(path.join(dir, 'tlsboot'), 0o755);
  return dir;
}

const cp = await startPlane(t);
const token = await cp.createToken();

t.test('alone in an empty folder, with no environment: version, help, and a one-line error', async (t) => {
  const dir = await alone(t, EXECUTABLE);
  t.same(await fs.readdir(dir), ['tlsboot']);
  const v = await bare(dir, ['./tlsboot', 'version']);
  t.equal(v.code, 0, v.stderr);
  t.equal(v.stdout, `tlsboot v${VERSION} (node v${EMBEDDED}, linux/${process.arch})\n`, 'the pinned Node 24, not the build machine\'s');
  t.equal(v.stderr, '', 'no experimental-feature warning');
  const help = await bare(dir, ['./tlsboot', '--help']);
  t.equal(help.code, 0);
  for (const c of ['run', 'status', 'doctor', 'approve', 'token', 'cluster', 'kubeconfig', 'bundle', 'version']) t.match(help.stdout, new RegExp(`tlsboot ${c}\\b`));
  const bad = await bare(dir, ['./tlsboot', 'run', '--once', '--kubeconfig', 'k', '--bootstrap-kubeconfig', 'missing.kubeconfig', '--cert-dir', 'pki']);
  t.equal(bad.code, 2, 'a configuration error');
  t.equal(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr}`);
  t.match(bad.stderr, /missing\.kubeconfig/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  t.same((await fs.readdir(dir)).sort(), ['pki', 'tlsboot'], 'no kubeconfig written');
  t.same(await fs.readdir(path.join(dir, 'pki')), ['.kubelet-client.state.json'], 'no key or certificate: only the state that status reads');
});

t.test('bundle writes the units and examples embedded in the executable', async (t) => {
  const dir = await alone(t, EXECUTABLE);
  await fs.writeFile(path.join(dir, 'token'), `${token.value}\n`, { mode: 0o600 });
  const r = await bare(dir, ['./tlsboot', 'bundle', '--node', 'lb1', '--identity', 'haproxy', '--out', 'out', '--token-file', 'token', '--server', cp.server, '--ca', cp.caPath]);
  t.equal(r.code, 0, r.stderr);
  const shipped: [string, string][] = [['etc/systemd/system/tlsboot@.service', 'systemd/tlsboot@.service'], ['etc/systemd/system/haproxy.service.d/tlsboot.conf', 'systemd/haproxy.service.d/tlsboot.conf']];
  for (const [written, source] of shipped) {
    t.equal(await fs.readFile(path.join(dir, 'out', written), 'utf8'), await fs.readFile(path.join(ROOT, source), 'utf8'), written);
  }
  t.match(await fs.readFile(path.join(dir, 'out', 'etc/tlsboot/haproxy.yaml'), 'utf8'), /nodeName: lb1/);
});

t.test('bootstraps against the real control plane; the node name is the host name at run time, not at build time', async (t) => {
  const dir = await alone(t, EXECUTABLE);
  const node = await makeNode(t, cp, 'ignored', token);
  // A UTS namespace of the test's own, with a host name the build machine never had.
  const host = `exe-${process.pid}`;
  const args = ['run', '--once', '--kubeconfig', node.kubeconfig, '--bootstrap-kubeconfig', node.bootstrap, '--cert-dir', node.pki];
  const r = await bare(dir, ['unshare', '--uts', 'sh', '-c', `hostname ${host} && exec ./tlsboot "$@"`, 'sh', ...args]);
  t.equal(r.code, 0, r.stderr);
  const [leaf] = parseChain(await fs.readFile(path.join(node.pki, 'kubelet-client-current.pem'), 'utf8'));
  t.equal(leaf!.subject.commonName, `system:node:${host}`);
  t.equal(await cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: node.kubeconfig }), `system:node:${host}`);
});

t.test('arm64 under qemu-user: version and a bootstrap against the real control plane', async (t) => {
  const dir = await alone(t, ARM64);
  const v = await bare(dir, [...QEMU, './tlsboot', 'version']);
  t.equal(v.code, 0, v.stderr);
  t.equal(v.stdout, `tlsboot v${VERSION} (node v${EMBEDDED}, linux/arm64)\n`);
  const node = await makeNode(t, cp, 'arm64-node', token);
  const r = await bare(dir, [...QEMU, './tlsboot', ...node.args('--once')], 300_000);
  t.equal(r.code, 0, r.stderr);
  const [leaf] = parseChain(await fs.readFile(path.join(node.pki, 'kubelet-client-current.pem'), 'utf8'));
  t.equal(leaf!.subject.commonName, 'system:node:arm64-node');
});

t.test('the npm package also runs on the Node 24 the executable embeds: a bootstrap', async (t) => {
  const node24 = path.join(ROOT, 'dist', 'sea', `node-${process.arch}`);
  const dir = await tempDir(t, 'tlsboot-npm24-');
  const v = await bare(dir, [node24, CLI, 'version']);
  t.equal(v.stdout, `tlsboot v${VERSION} (node v${EMBEDDED}, linux/${process.arch})\n`);
  const node = await makeNode(t, cp, 'npm-on-24', token);
  const r = await bare(dir, [node24, CLI, ...node.args('--once')]);
  t.equal(r.code, 0, r.stderr);
  t.ok(existsSync(path.join(node.pki, 'kubelet-client-current.pem')));
});
