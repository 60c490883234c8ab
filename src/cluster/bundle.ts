// `tlsboot bundle`: everything one node needs, in one folder or .tar.gz: the bootstrap kubeconfig
// (server and CA; the token is a separate 0600 file handed to the service by LoadCredential=),
// the identity's tlsboot config, the systemd units and drop-ins, and install.sh.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { renderBootstrapKubeconfig } from '../kube/kubeconfig.js';
import { isNodeName } from '../kube/vocabulary.js';
import { ConfigError } from '../base/errors.js';
import { readShipped } from '../base/shipped.js';
import { writeFileAtomic } from '../base/fsutil.js';

const run = promisify(execFile);
export const BUNDLE_IDENTITIES = ['kubelet', 'haproxy', 'keepalived'] as const;
export type BundleIdentity = (typeof BUNDLE_IDENTITIES)[number];


export interface BundleInput {
  node: string;
  identity: BundleIdentity;
  server: string;
  caPem: string;
  token: string;
  out: string;
}

const CONFIG: Record<BundleIdentity, { example: string; file: string; unit: string; dropIns: string[] }> = {
  kubelet: { example: 'examples/kubelet/config.yaml', file: 'config.yaml', unit: 'tlsboot.service', dropIns: [] },
  haproxy: { example: 'examples/haproxy/haproxy.yaml', file: 'haproxy.yaml', unit: 'tlsboot@.service', dropIns: ['systemd/haproxy.service.d/tlsboot.conf', 'examples/haproxy/tlsboot@haproxy.service.d/paths.conf'] },
  keepalived: { example: 'examples/keepalived/keepalived.yaml', file: 'keepalived.yaml', unit: 'tlsboot@.service', dropIns: ['systemd/keepalived.service.d/tlsboot.conf'] },
};

export async function writeBundle(b: BundleInput): Promise<string> {
  if (!isNodeName(b.node)) throw new ConfigError(`--node ${JSON.stringify(b.node)} is not a valid node name`);
  const tar = b.out.endsWith('.tar.gz') || b.out.endsWith('.tgz');
  const dir = tar ? await fs.mkdtemp(path.join(os.tmpdir(), 'tlsboot-bundle-')) : b.out;
  try {
    const c = CONFIG[b.identity];
    const put = (rel: string, data: string, mode: number): Promise<void> => writeFileAtomic(path.join(dir, rel), data, { mode });
    // No token inside: it travels as its own 0600 file, for LoadCredential=.
    await put('etc/tlsboot/bootstrap.kubeconfig', renderBootstrapKubeconfig({ server: b.server, caPem: b.caPem }), 0o600);
    await put('etc/tlsboot/bootstrap-token', b.token + '\n', 0o600);
    const config = (await readShipped(c.example)).replace(/nodeName: \S+/, `nodeName: ${b.node}`);
    const withNode = b.identity === 'kubelet' ? config.replace(/(certDir: .*\n)/, `$1    nodeName: ${b.node}\n`) : config;
    await put(`etc/tlsboot/${c.file}`, withNode, 0o644);
    await put(`etc/systemd/system/${c.unit}`, await readShipped(`systemd/${c.unit}`), 0o644);
    for (const d of c.dropIns) {
      const unitDir = path.basename(path.dirname(d));
      await put(`etc/systemd/system/${unitDir}/${path.basename(d)}`, await readShipped(d), 0o644);
    }
    const service = b.identity === 'kubelet' ? 'tlsboot.service' : `tlsboot@${b.identity}.service`;
    await put('install.sh', installScript(service, b.identity), 0o755);
    if (tar) {
      await fs.mkdir(path.dirname(path.resolve(b.out)), { recursive: true });
      await run('tar', ['-czf', path.resolve(b.out), '-C', dir, '.']);
      await fs.chmod(b.out, 0o600);
    }
    return service;
  } finally {
    if (tar) await fs.rm(dir, { recursive: true, force: true });
  }
}

function installScript(service: string, identity: BundleIdentity): string {
  return `#!/bin/sh
# Installs this tlsboot bundle: copies etc/ into \${DESTDIR:-}/ keeping modes, then (without
# DESTDIR) reloads systemd and starts ${service}.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest="\${DESTDIR:-}"
command -v tlsboot >/dev/null 2>&1 || [ -n "$dest" ] || { echo "install.sh: install tlsboot first (dpkg -i tlsboot_<version>_<arch>.deb, or the executable as /usr/bin/tlsboot)" >&2; exit 1; }
cd "$here"
find etc -type d | while read -r d; do mkdir -p "$dest/$d"; done
find etc -type f | while read -r f; do cp -p "$f" "$dest/$f"; done
chmod 0600 "$dest/etc/tlsboot/bootstrap-token" "$dest/etc/tlsboot/bootstrap.kubeconfig"
if [ -z "$dest" ]; then
  systemctl daemon-reload
  systemctl enable --now ${service}
  ${identity === 'kubelet' ? '' : `systemctl enable ${identity}.service || true`}
  echo "installed; check with: systemctl status ${service} && tlsboot status --config /etc/tlsboot/${CONFIG[identity].file}"
fi
`;
}
