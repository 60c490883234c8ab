// `make bench`: time a full TLS bootstrap (process start -> key -> CSR -> approved, issued ->
// files written) for tlsboot and for kubelet's own bootstrap code (the kubelet-bootstrap
// reference built from k8s.io/kubernetes), against the same local control plane, in one run.
// Also the in-process cost of a key + CSR per key algorithm. Prints figures; asserts nothing.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildCsrPem } from '../src/pki/csr.js';
import { generateKey, KEY_ALGORITHMS } from '../src/pki/keys.js';
import { ControlPlane } from '../test/controlplane/controlplane.js';
import { CLI } from '../test/support/helpers.js';

const run = promisify(execFile);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10);

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(0)} ms, p90 ${q(0.9).toFixed(0)} ms, min ${s[0]!.toFixed(0)} ms (n=${s.length})`;
}

const cp = await ControlPlane.start();
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-bench-'));
try {
  const token = await cp.createToken();
  const bootstrap = await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), token.value);
  const tlsboot: number[] = [];
  const kubelet: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const who of ['tlsboot', 'kubelet'] as const) {
      const node = path.join(dir, `${who}-${i}`);
      const common = ['--kubeconfig', path.join(node, 'kubeconfig'), '--bootstrap-kubeconfig', bootstrap, '--cert-dir', path.join(node, 'pki'), '--node-name', `${who}-${i}`];
      const start = performance.now();
      if (who === 'tlsboot') await run(process.execPath, [CLI, 'run', '--once', ...common]);
      else await run(path.join(cp.binDir, 'kubelet-bootstrap'), common);
      (who === 'tlsboot' ? tlsboot : kubelet).push(performance.now() - start);
    }
  }
  console.log(`full bootstrap against kube-apiserver + kube-controller-manager v1.36.3 on 127.0.0.1 (process start to files on disk):`);
  console.log(`  tlsboot run --once        ${stats(tlsboot)}`);
  console.log(`  kubelet LoadClientCert    ${stats(kubelet)}   (peer: kubelet's own bootstrap code)`);
  console.log('key generation + PKCS#10 CSR, in process:');
  for (const alg of KEY_ALGORITHMS) {
    const n = alg.startsWith('rsa') ? 5 : 50;
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      const key = await generateKey(alg);
      await buildCsrPem(key, { subject: { commonName: 'system:node:bench', organizations: ['system:nodes'] }, dnsNames: [], ipAddresses: [] });
      times.push(performance.now() - start);
    }
    console.log(`  ${alg.padEnd(11)} ${stats(times)}`);
  }
} finally {
  await cp.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
