// Fault suite: the disk fills up, or turns read-only, under the node's cert dir (a small tmpfs
// the test mounts; root only). A failed write names the file and the cause, leaves nothing half
// written, and never costs the certificate already in place.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { makeNode, startPlane, startTlsboot, type Node } from '../support/e2e.js';
import { listDir } from '../support/helpers.js';
import { expectHealthy, once, PEM, whoami } from './support.js';

const run = promisify(execFile);
const root = process.getuid?.() === 0;
const skip = root ? false : 'mounting a small tmpfs needs root (CI runs as root)';
const cp = await startPlane(t);
const token = await cp.createToken();

/** The node's cert dir on a tmpfs of its own, unmounted at the end. */
async function smallDisk(t: Test, name: string): Promise<Node> {
  const node = await makeNode(t, cp, name, token);
  await fs.mkdir(node.pki, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', node.pki]);
  t.teardown(() => run('umount', ['-l', node.pki]).catch(() => undefined));
  return node;
}

/** Fill the disk to the last byte. */
async function fill(node: Node): Promise<() => Promise<void>> {
  const filler = path.join(node.pki, 'filler');
  await run('sh', ['-c', `cat /dev/zero > '${filler}' 2>/dev/null; true`]);
  return () => fs.rm(filler);
}

t.test('disk full during bootstrap: a clear error and no partial file; bootstraps once there is room', { skip }, async (t) => {
  const node = await smallDisk(t, 'disk-full-boot');
  const free = await fill(node);
  const r = await once(node, '--retry-timeout', '3s');
  t.equal(r.code, 1, r.output);
  t.match(r.output, new RegExp(`cannot write ${node.pki}/kubelet-client\\.key\\.tmp: the disk is full; free some space \\(ENOSPC\\)`));
  t.same((await listDir(node.pki)).filter((f) => f !== 'filler'), [], 'nothing half written');
  await free();
  t.equal((await once(node)).code, 0);
  t.equal(await expectHealthy(t, cp, node), 1);
});

t.test('disk full during a rotation: the current certificate stays and authenticates; rotated once there is room', { skip }, async (t) => {
  const node = await smallDisk(t, 'disk-full-rotate');
  t.equal((await once(node)).code, 0);
  const first = await fs.readFile(path.join(node.pki, PEM), 'utf8');
  const free = await fill(node);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/could not get a certificate; retrying error="cannot write .*the disk is full/, 30_000);
  t.equal(await fs.readFile(path.join(node.pki, PEM), 'utf8'), first, 'the certificate in place is untouched');
  t.equal(await whoami(cp, node.kubeconfig), 'system:node:disk-full-rotate', 'and still works');
  await free();
  await daemon.waitFor(/client certificate issued and written/, 60_000);
  t.equal(await daemon.stop(), 0);
  t.not(await fs.readFile(path.join(node.pki, PEM), 'utf8'), first, 'rotated');
  t.equal(await expectHealthy(t, cp, node), 2);
});

t.test('a read-only cert dir during a rotation: the error says so; the certificate keeps working', { skip }, async (t) => {
  const node = await smallDisk(t, 'disk-read-only');
  t.equal((await once(node)).code, 0);
  await run('mount', ['-o', 'remount,ro', node.pki]);
  const daemon = startTlsboot(t, node.args());
  await daemon.waitFor(/next rotation scheduled/);
  daemon.child.kill('SIGUSR1');
  await daemon.waitFor(/retrying error="cannot write .*the file system is read-only \(EROFS\)/, 30_000);
  t.equal(await whoami(cp, node.kubeconfig), 'system:node:disk-read-only');
  await run('mount', ['-o', 'remount,rw', node.pki]);
  await daemon.waitFor(/client certificate issued and written/, 60_000);
  t.equal(await daemon.stop(), 0);
  t.equal(await expectHealthy(t, cp, node), 2);
});
