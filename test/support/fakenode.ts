// A node (temp folder, bootstrap kubeconfig) against a fresh fake API server, for test/fake.
import path from 'node:path';
import type { Test } from 'tap';
import { FakeApiServer, type FakeApiOptions } from './fakeapi.js';
import { tempDir } from './helpers.js';

export const TOKEN = 'abcdef.0123456789abcdef';
/** TOKEN is in kubeadm's auto-approved node group; the z token only in system:bootstrappers. */
export const TOKENS = {
  [TOKEN]: { username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:kubeadm:default-node-token'] },
  'zzzzzz.0123456789abcdef': { username: 'system:bootstrap:zzzzzz', groups: ['system:bootstrappers'] },
};

export async function fakeNode(t: Test, opts: FakeApiOptions = {}) {
  const fake = await FakeApiServer.start({ tokens: TOKENS, ...opts });
  t.teardown(() => fake.stop());
  const dir = await tempDir(t);
  const bootstrap = await fake.writeBootstrapKubeconfig(path.join(dir, 'bootstrap.kubeconfig'), TOKEN);
  const kubeconfig = path.join(dir, 'kubeconfig');
  const pki = path.join(dir, 'pki');
  /** `tlsboot run --once` for node-1 with these extra flags. */
  const args = (...extra: string[]): string[] => [
    'run', '--once', '--kubeconfig', kubeconfig, '--bootstrap-kubeconfig', bootstrap, '--cert-dir', pki, '--node-name', 'node-1', ...extra,
  ];
  return { fake, dir, bootstrap, kubeconfig, pki, args };
}
