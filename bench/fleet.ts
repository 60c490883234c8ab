// `make bench-fleet`: what a fleet does to the real API server, counted from the server's side
// (its audit log). One `tlsboot run --config` holds N identities (FLEET_N, default 1,000):
//   1. all N bootstrap at once: time to all issued, requests per identity, 429s, RSS, CPU;
//   2. the API server is down for 60 s while N more bootstrap: the peak requests per second once
//      it is back, the time until all are issued, and the log lines written during the outage;
//   3. a rotation that is never approved, over 3 approval timeouts and a restart: its CSRs;
//   4. the peer: 100 kubelet-bootstrap processes (kubelet's own code) at once.
// Prints figures; asserts nothing.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ControlPlane, type AuditEvent } from '../test/controlplane/controlplane.js';
import { CLI } from '../test/support/paths.js';

const run = promisify(execFile);
const N = Number(process.env['FLEET_N'] ?? 1000);
const OUTAGE_MS = Number(process.env['FLEET_OUTAGE_S'] ?? 60) * 1000;
const KUBELETS = Number(process.env['FLEET_KUBELETS'] ?? 100);
const HZ = 100; // USER_HZ: /proc/<pid>/stat counts CPU in these ticks on Linux

/** A running daemon with everything it wrote, line by line, with the time each came. */
class Daemon {
  readonly child: ChildProcess;
  readonly lines: Array<{ at: number; text: string }> = [];
  readonly started = Date.now();
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let rest = '';
    const take = (d: Buffer): void => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const text of parts) this.lines.push({ at: Date.now(), text });
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
  }
  async until(re: RegExp, timeoutMs: number): Promise<number> {
    for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) {
      const hit = this.lines.find((l) => re.test(l.text));
      if (hit) return hit.at;
      if (this.child.exitCode !== null) throw new Error(`tlsboot exited ${this.child.exitCode}: ${this.lines.slice(-5).map((l) => l.text).join('\n')}`);
    }
    throw new Error(`timed out waiting for ${re}`);
  }
  /** Wait until `n` lines match. */
  async count(re: RegExp, n: number, timeoutMs: number): Promise<void> {
    for (const end = Date.now() + timeoutMs; this.lines.filter((l) => re.test(l.text)).length < n; await sleep(100)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${n} lines like ${re}`);
    }
  }
  async status(): Promise<{ rssMb: number; cpuS: number }> {
    const status = await fs.readFile(`/proc/${this.child.pid}/status`, 'utf8');
    const stat = (await fs.readFile(`/proc/${this.child.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return { rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024, cpuS: (Number(stat[11]) + Number(stat[12])) / HZ };
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await new Promise((r) => this.child.once('exit', r));
  }
}

async function fleetConfig(dir: string, bootstrap: string, prefix: string, n: number, extra = ''): Promise<string> {
  const ids = Array.from({ length: n }, (_, i) => `  - name: ${prefix}${i}\n    bootstrapKubeconfig: ${bootstrap}\n    kubeconfig: ${dir}/${prefix}${i}/kubeconfig\n    certDir: ${dir}/${prefix}${i}/pki\n    nodeName: ${prefix}${i}\n${extra}`);
  const file = path.join(dir, `${prefix}.yaml`);
  await fs.writeFile(file, `identities:\n${ids.join('')}`);
  return file;
}

const byUser = (events: AuditEvent[], user: string, since = 0): AuditEvent[] =>
  events.filter((e) => e.user.username === user && Date.parse(e.requestReceivedTimestamp) >= since);
const peakPerSecond = (events: AuditEvent[]): number => {
  const buckets = new Map<number, number>();
  for (const e of events) {
    const s = Math.floor(Date.parse(e.requestReceivedTimestamp) / 1000);
    buckets.set(s, (buckets.get(s) ?? 0) + 1);
  }
  return Math.max(0, ...buckets.values());
};
const throttled = (events: AuditEvent[]): number => events.filter((e) => e.responseStatus?.code === 429).length;
const codes = (events: AuditEvent[]): string => {
  const by = new Map<string, number>();
  for (const e of events) by.set(`${e.verb} ${e.responseStatus?.code ?? '?'}`, (by.get(`${e.verb} ${e.responseStatus?.code ?? '?'}`) ?? 0) + 1);
  return [...by].sort().map(([k, v]) => `${k}: ${v}`).join(', ');
};
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

const cp = await ControlPlane.start({ audit: true });
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-fleet-'));
try {
  console.log(`kube-apiserver + kube-controller-manager v1.36.3 on 127.0.0.1, defaults, audit log on; one tlsboot run --config with N=${N} identities (node ${process.version})`);

  // cluster-info published, as on a kubeadm cluster: each daemon follows the cluster's CAs.
  await run(process.execPath, [CLI, 'cluster', 'rbac', '--kubeconfig', cp.adminKubeconfig]);

  // 1. All at once.
  const t1 = await cp.createToken();
  const b1 = await cp.writeBootstrapKubeconfig(path.join(dir, 'b1.kubeconfig'), t1.value);
  const one = new Daemon(['--config', await fleetConfig(dir, b1, 'solo', 1)]);
  await one.until(/ready: every identity/, 120_000);
  await sleep(10_000);
  const soloRss = (await one.status()).rssMb;
  await one.stop();
  const since1 = Date.now();
  const all = new Daemon(['--config', await fleetConfig(dir, b1, 'a', N)]);
  const ready1 = await all.until(/ready: every identity/, 30 * 60_000);
  const atReady = await all.status();
  await sleep(10_000);
  const idle = await all.status();
  await all.stop();
  const audit1 = await cp.auditEvents();
  const ev1 = byUser(audit1, `system:bootstrap:${t1.id}`, since1);
  // The anonymous reads of cluster-info (trust tracking): one per server per daemon, not per identity.
  const info1 = byUser(audit1, 'system:anonymous', since1).filter((e) => e.objectRef?.resource === 'configmaps');
  console.log(`1. ${N} identities at once`);
  console.log(`   all issued in ${s(ready1 - all.started)}; ${ev1.length} requests (${(ev1.length / N).toFixed(2)} per identity), ${throttled(ev1)} answered 429; peak ${peakPerSecond(ev1)} requests/s`);
  console.log(`   cluster-info reads (anonymous, trust tracking): ${info1.length} for ${N} identities`);
  console.log(`   RSS ${atReady.rssMb.toFixed(0)} MB at ready, ${idle.rssMb.toFixed(0)} MB idle (one identity alone: ${soloRss.toFixed(0)} MB; ${((idle.rssMb - soloRss) / (N - 1)).toFixed(3)} MB per extra identity); CPU ${idle.cpuS.toFixed(1)} s`);

  // 2. Through an outage.
  const t2 = await cp.createToken();
  const b2 = await cp.writeBootstrapKubeconfig(path.join(dir, 'b2.kubeconfig'), t2.value);
  await cp.stopProcess('kube-apiserver');
  const down = new Daemon(['--config', await fleetConfig(dir, b2, 'o', N)]);
  await sleep(OUTAGE_MS);
  const linesDuring = down.lines.filter((l) => l.at - down.started <= OUTAGE_MS).length;
  await cp.startApiserver();
  const back = Date.now();
  const ready2 = await down.until(/ready: every identity/, 30 * 60_000);
  await down.stop();
  const ev2 = byUser(await cp.auditEvents(), `system:bootstrap:${t2.id}`, back - 5_000);
  console.log(`2. ${N} identities bootstrapping through a ${OUTAGE_MS / 1000} s API server outage`);
  console.log(`   after it came back: peak ${peakPerSecond(ev2)} requests/s, ${ev2.length} requests (${(ev2.length / N).toFixed(2)} per identity), ${throttled(ev2)} answered 429; all issued ${s(ready2 - back)} after it came back`);
  const created = ev2.filter((e) => e.verb === 'create' && e.responseStatus?.code === 201).map((e) => Date.parse(e.requestReceivedTimestamp) - back);
  console.log(`   answers: ${codes(ev2)}; the creates came from ${s(Math.min(...created))} to ${s(Math.max(...created))} after the return (the rest is kube-controller-manager catching up)`);
  console.log(`   ${linesDuring} log lines during the outage (${(linesDuring / N).toFixed(3)} per identity)`);

  // 3. A rotation that is never approved (a signer the controller-manager does not approve).
  // The token's group may create CSRs but is not auto-approved; the certificate's group may rotate.
  await cp.allowCsrCreation('system:bootstrappers:bench');
  await cp.allowCsrCreation('tlsboot:bench');
  const t3 = await cp.createToken({ groups: ['system:bootstrappers:bench'] });
  const b3 = await cp.writeBootstrapKubeconfig(path.join(dir, 'b3.kubeconfig'), t3.value);
  const node = path.join(dir, 'rot');
  const rotArgs = ['--kubeconfig', path.join(node, 'kubeconfig'), '--bootstrap-kubeconfig', b3, '--cert-dir', path.join(node, 'pki'), '--signer-name', 'kubernetes.io/kube-apiserver-client',
    '--common-name', 'bench-rot', '--organization', 'tlsboot:bench', '--usage', 'digital signature', '--usage', 'client auth', '--approval-timeout', '3s', '-v', '1'];
  // Its CSRs: the bootstrap one (by the token) and the rotation ones (by its certificate).
  const mine = async (): Promise<string[]> => (await cp.csrs())
    .filter((c) => c.spec.username === `system:bootstrap:${t3.id}` || c.spec.username === 'bench-rot').map((c) => c.metadata.name ?? '');
  const boot = spawn(process.execPath, [CLI, 'run', '--once', ...rotArgs], { stdio: 'ignore' });
  let first: string | undefined;
  for (let i = 0; i < 100 && !first; i++, await sleep(200)) first = (await mine())[0];
  await cp.kubectl(['certificate', 'approve', first!]);
  await new Promise((r) => boot.once('exit', r));
  // Three approval timeouts in one daemon, then a restart and one more.
  for (const timeouts of [3, 1]) {
    const d = new Daemon(rotArgs);
    await d.until(/next rotation scheduled/, 60_000);
    d.child.kill('SIGUSR1');
    await d.count(/was not approved within 3 s/, timeouts, 120_000);
    await d.stop();
  }
  const rotation = (await mine()).filter((n) => n !== first);
  console.log(`3. a rotation never approved, over 3 approval timeouts (3 s), a restart and another: ${rotation.length} rotation CSR(s) (${rotation.join(' ')})`);

  // 4. The peer: kubelet's own bootstrap code, KUBELETS processes at once.
  const t4 = await cp.createToken();
  const b4 = await cp.writeBootstrapKubeconfig(path.join(dir, 'b4.kubeconfig'), t4.value);
  const since4 = Date.now();
  const start4 = performance.now();
  await Promise.all(Array.from({ length: KUBELETS }, (_, i) => run(path.join(cp.binDir, 'kubelet-bootstrap'), [
    '--kubeconfig', path.join(dir, `k${i}`, 'kubeconfig'), '--bootstrap-kubeconfig', b4, '--cert-dir', path.join(dir, `k${i}`, 'pki'), '--node-name', `k${i}`,
  ])));
  const took4 = performance.now() - start4;
  const ev4 = byUser(await cp.auditEvents(), `system:bootstrap:${t4.id}`, since4);
  console.log(`4. peer: ${KUBELETS} kubelet-bootstrap processes (kubelet's LoadClientCert) at once`);
  console.log(`   all issued in ${s(took4)}; ${ev4.length} requests (${(ev4.length / KUBELETS).toFixed(2)} per identity), ${throttled(ev4)} answered 429`);
  const since5 = Date.now();
  const same = new Daemon(['--config', await fleetConfig(dir, b4, 'p', KUBELETS)]);
  const ready5 = await same.until(/ready: every identity/, 10 * 60_000);
  await same.stop();
  const ev5 = byUser(await cp.auditEvents(), `system:bootstrap:${t4.id}`, since5);
  console.log(`   tlsboot, the same ${KUBELETS} in one process: all issued in ${s(ready5 - same.started)}; ${ev5.length} requests (${(ev5.length / KUBELETS).toFixed(2)} per identity), ${throttled(ev5)} answered 429`);
} finally {
  await cp.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
