// `make bench`: time a full TLS bootstrap (process start -> key -> CSR -> approved, issued ->
// files written) for the single executable, for the npm package (node dist/) and for kubelet's
// own bootstrap code (the kubelet-bootstrap reference built from k8s.io/kubernetes), against the
// same local control plane, in one run, interleaved. Also the start of `tlsboot version`, the RSS
// of an idle daemon with one identity beside a bare idle Node, and the in-process cost of a key +
// CSR per key algorithm. Prints figures; asserts nothing.
import { execFile, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildCsrPem } from '../src/pki/csr.js';
import { generateKey, KEY_ALGORITHMS } from '../src/pki/keys.js';
import { ControlPlane } from '../test/controlplane/controlplane.js';
import { CLI, EXECUTABLE } from '../test/support/paths.js';

const run = promisify(execFile);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10);
if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: run "make package" first`);
const RUNTIME = path.join(path.dirname(EXECUTABLE), 'sea', `node-${process.arch}`);

const median = (ms: number[]): number => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(0).padStart(4)} ms, p90 ${q(0.9).toFixed(0).padStart(4)} ms, min ${s[0]!.toFixed(0).padStart(4)} ms (n=${s.length})`;
}

async function timed(file: string, args: string[]): Promise<number> {
  const start = performance.now();
  await run(file, args);
  return performance.now() - start;
}

/** The RSS of a process once it has settled, in MB. */
async function idleRss(file: string, args: string[], settled: () => boolean): Promise<number> {
  const child = spawn(file, args, { stdio: 'ignore' });
  try {
    for (let i = 0; i < 300 && !settled(); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 5_000));
    const status = await fs.readFile(`/proc/${child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const cp = await ControlPlane.start();
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-bench-'));
try {
  const token = await cp.createToken();
  const bootstrap = await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), token.value);
  const clients = {
    executable: (a: string[]) => timed(EXECUTABLE, ['run', '--once', ...a]),
    'node dist/': (a: string[]) => timed(process.execPath, [CLI, 'run', '--once', ...a]),
    kubelet: (a: string[]) => timed(path.join(cp.binDir, 'kubelet-bootstrap'), a),
  };
  const times: Record<keyof typeof clients, number[]> = { executable: [], 'node dist/': [], kubelet: [] };
  const nodeArgs = (name: string): string[] => ['--kubeconfig', path.join(dir, name, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(dir, name, 'pki'), '--node-name', name];
  for (let i = 0; i < ROUNDS; i++) {
    for (const who of Object.keys(clients) as (keyof typeof clients)[]) times[who].push(await clients[who](nodeArgs(`${who.replace(/\W/g, '')}-${i}`)));
  }
  const kubelet = median(times.kubelet);
  console.log(`full bootstrap against kube-apiserver + kube-controller-manager v1.36.3 on 127.0.0.1 (process start to files on disk):`);
  console.log(`  tlsboot executable        ${stats(times.executable)}   ${(median(times.executable) / kubelet).toFixed(1)}x kubelet's`);
  console.log(`  tlsboot node dist/        ${stats(times['node dist/'])}   ${(median(times['node dist/']) / kubelet).toFixed(1)}x kubelet's`);
  console.log(`  kubelet LoadClientCert    ${stats(times.kubelet)}   (peer: kubelet's own bootstrap code)`);

  const starts = { executable: [] as number[], 'node dist/': [] as number[], 'node -e 0 (embedded Node)': [] as number[], 'node -e 0 (this Node)': [] as number[] };
  for (let i = 0; i < 20; i++) {
    starts.executable.push(await timed(EXECUTABLE, ['version']));
    starts['node dist/'].push(await timed(process.execPath, [CLI, 'version']));
    starts['node -e 0 (embedded Node)'].push(await timed(RUNTIME, ['-e', '0']));
    starts['node -e 0 (this Node)'].push(await timed(process.execPath, ['-e', '0']));
  }
  console.log('start of `tlsboot version`, and of a bare Node:');
  for (const [who, ms] of Object.entries(starts)) console.log(`  ${who.padEnd(26)}${stats(ms)}`);

  console.log('RSS, idle (5 s after the certificate is on disk), one identity:');
  const daemon = nodeArgs('daemon');
  const current = path.join(dir, 'daemon', 'pki', 'kubelet-client-current.pem');
  const exeRss = await idleRss(EXECUTABLE, ['run', ...daemon], () => existsSync(current));
  const nodeRss = await idleRss(process.execPath, [CLI, 'run', ...daemon], () => existsSync(current));
  const idleScript = ['-e', 'setInterval(() => {}, 1e9)'];
  const bare24 = await idleRss(RUNTIME, idleScript, () => true);
  const bare = await idleRss(process.execPath, idleScript, () => true);
  console.log(`  tlsboot executable        ${exeRss.toFixed(1)} MB   (+${(exeRss - bare24).toFixed(1)} MB over a bare idle Node ${bare24.toFixed(1)} MB, the embedded ${(await run(RUNTIME, ['--version'])).stdout.trim()})`);
  console.log(`  tlsboot node dist/        ${nodeRss.toFixed(1)} MB   (+${(nodeRss - bare).toFixed(1)} MB over a bare idle Node ${bare.toFixed(1)} MB, ${process.version})`);

  console.log('key generation + PKCS#10 CSR, in process:');
  for (const alg of KEY_ALGORITHMS) {
    const n = alg.startsWith('rsa') ? 5 : 50;
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      const key = await generateKey(alg);
      await buildCsrPem(key, { subject: { commonName: 'system:node:bench', organizations: ['system:nodes'] }, dnsNames: [], ipAddresses: [] });
      ms.push(performance.now() - start);
    }
    console.log(`  ${alg.padEnd(11)} ${stats(ms)}`);
  }
} finally {
  await cp.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
