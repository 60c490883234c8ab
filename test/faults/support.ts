// The fault suite's shared checks. Every scenario ends the same way: a valid credential is on
// disk, the real API server authenticates it (kubectl auth whoami with the written kubeconfig),
// no temporary file is left behind, and the CSRs the node made are counted.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { parseChain } from '../../src/pki/certs.js';
import type { ControlPlane } from '../controlplane/controlplane.js';
import { csrsFor, type Node } from '../support/e2e.js';
import { runCli, type CliResult } from '../support/helpers.js';

export const PEM = 'kubelet-client-current.pem';

/** `tlsboot run --once` for the node, with a bounded retry time so that no scenario hangs. */
export function once(node: Node, ...extra: string[]): Promise<CliResult & { output: string }> {
  const bound = extra.includes('--retry-timeout') ? [] : ['--retry-timeout', '90s'];
  return runCli(node.args('--once', ...bound, ...extra), { timeoutMs: 150_000 });
}

/** Who the API server says the node's written kubeconfig is. */
export async function whoami(cp: ControlPlane, kubeconfig: string): Promise<string> {
  const out = await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
  return (JSON.parse(out) as { status: { userInfo: { username: string } } }).status.userInfo.username;
}

/** Files a crash could leave: tlsboot's `.name.tmp-*` (the bootstrap key.tmp is by design). */
async function leftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) found.push(...(await leftovers(path.join(dir, entry.name))));
    else if (/\.tmp-[0-9a-f]+$/.test(entry.name)) found.push(path.join(dir, entry.name));
  }
  return found;
}

/**
 * The end of every scenario: a certificate valid now, authenticated as the node, nothing half
 * written. Returns the number of CSRs that asked for the node's name, for the scenario to judge.
 */
export async function expectHealthy(t: Test, cp: ControlPlane, node: Node): Promise<number> {
  const pem = await fs.readFile(path.join(node.pki, PEM), 'utf8');
  const [leaf] = parseChain(pem);
  const now = Date.now();
  t.ok(leaf && leaf.notBefore.getTime() <= now && now < leaf.notAfter.getTime(), 'the current certificate is valid now');
  t.equal(await whoami(cp, node.kubeconfig), `system:node:${node.name}`, 'and the API server authenticates it');
  t.same(await leftovers(node.dir), [], 'no temporary file left');
  const csrs = (await csrsFor(cp, `system:node:${node.name}`)).length;
  t.comment(`${node.name}: ${csrs} CSR(s)`);
  return csrs;
}

/** A seeded PRNG (mulberry32): the kill points of a loop are the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The key in a node's current PEM (chain first, then the key, as kubelet writes it). */
export async function currentKey(node: Node): Promise<string> {
  const pem = await fs.readFile(path.join(node.pki, PEM), 'utf8');
  const m = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n/.exec(pem);
  if (!m) throw new Error(`${node.pki}/${PEM} holds no key`);
  return m[0];
}
