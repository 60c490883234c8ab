// Shared set-up for the end-to-end suites: one real control plane per test file, nodes in temp
// folders, the real tlsboot CLI as a child process.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import type { CsrObject } from '../../src/kube/csrtypes.js';
import { parseCsrPem } from '../../src/pki/csr.js';
import { ControlPlane, type Token } from '../controlplane/controlplane.js';
import { parseChain } from '../../src/pki/certs.js';
import { CliProcess, runCli, tempDir } from './helpers.js';
export { until } from './helpers.js';

export async function startPlane(t: Test, signingDuration?: string): Promise<ControlPlane> {
  const cp = await ControlPlane.start({ ...(signingDuration ? { signingDuration } : {}), log: (l) => t.comment(l) });
  t.teardown(() => cp.stop({ keepLogs: !t.passing() }));
  return cp;
}

export interface Node {
  name: string;
  dir: string;
  kubeconfig: string;
  bootstrap: string;
  pki: string;
  args: (...extra: string[]) => string[];
}

export async function makeNode(t: Test, cp: ControlPlane, name: string, token: Token): Promise<Node> {
  const dir = await tempDir(t, `tlsboot-${name}-`);
  const bootstrap = await cp.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), token.value);
  const kubeconfig = path.join(dir, 'kubeconfig');
  const pki = path.join(dir, 'pki');
  return {
    name, dir, kubeconfig, bootstrap, pki,
    args: (...extra) => ['run', '--kubeconfig', kubeconfig, '--bootstrap-kubeconfig', bootstrap, '--cert-dir', pki, '--node-name', name, ...extra],
  };
}

export function startTlsboot(t: Test, args: string[], env: Record<string, string> = {}): CliProcess {
  const p = new CliProcess(args, env);
  t.teardown(async () => {
    if (p.child.exitCode === null) await p.stop('SIGKILL');
    if (!t.passing()) t.comment(`tlsboot output:\n${p.output}`);
  });
  return p;
}

export async function csrsBy(cp: ControlPlane, filter: (c: CsrObject) => boolean): Promise<CsrObject[]> {
  return (await cp.csrs()).filter(filter);
}

/**
 * The CSRs that asked for the subject CN `commonName`: a test's own, even when other test files
 * share the cluster (attach mode runs them in parallel against one cluster).
 */
export async function csrsFor(cp: ControlPlane, commonName: string): Promise<CsrObject[]> {
  const all = await cp.csrs();
  const cns = await Promise.all(all.map(async (c) => (await parseCsrPem(Buffer.from(c.spec.request, 'base64').toString())).subject.commonName));
  return all.filter((_, i) => cns[i] === commonName);
}

/**
 * Why a test that needs short-lived certificates (at most `maxMs`) must skip, or false. The local
 * control plane is started with the signing duration the file asks for; an attached cluster
 * signs with its own, so one bootstrap there measures it.
 */
export async function shortCertificatesSkip(t: Test, cp: ControlPlane, maxMs: number): Promise<string | false> {
  if (!cp.external) return false;
  const node = await makeNode(t, cp, 'signing-probe', await cp.createToken());
  const res = await runCli(node.args('--once'));
  if (res.code !== 0) throw new Error(`probing the attached cluster's signing duration failed:\n${res.output}`);
  const [leaf] = parseChain(await fs.readFile(path.join(node.pki, 'kubelet-client-current.pem'), 'utf8'));
  const lifetime = leaf!.notAfter.getTime() - Date.now();
  if (lifetime <= maxMs) return false;
  return `the attached cluster signs certificates for ${Math.round(lifetime / 60_000)} min; this test needs at most ${Math.round(maxMs / 60_000)} min (kube-controller-manager --cluster-signing-duration=3m)`;
}

export async function currentTarget(node: Node, prefix = 'kubelet-client'): Promise<string> {
  return fs.readlink(path.join(node.pki, `${prefix}-current.pem`));
}

