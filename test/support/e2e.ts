// Shared set-up for the end-to-end suites: one real control plane per test file, nodes in temp
// folders, the real tlsboot CLI as a child process.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import type { CsrObject } from '../../src/api.js';
import { ControlPlane, type Token } from '../controlplane/controlplane.js';
import { CliProcess, tempDir } from './helpers.js';
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

export async function currentTarget(node: Node, prefix = 'kubelet-client'): Promise<string> {
  return fs.readlink(path.join(node.pki, `${prefix}-current.pem`));
}

