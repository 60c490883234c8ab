// `tlsboot token create|list|delete`: bootstrap tokens. The token is printed once, or written
// to a 0600 file; never logged, never listed.
import { ExitCode } from '../base/errors.js';
import { writeFileAtomic } from '../base/fsutil.js';
import { lib, makeToken, print, type Common, type Handler } from './admin.js';

export const tokenCreate: Handler<Common & { ttl: string; groups: string[]; description?: string }> = async (a, io) => {
  const made = await makeToken(a, io);
  if (!made) return ExitCode.runtime;
  if (a['dry-run']) {
    await print([made.secret], a.output, io);
    return ExitCode.ok;
  }
  if (a.out) {
    await writeFileAtomic(a.out, made.value + '\n', { mode: 0o600 });
    io.stderr(`token written to ${a.out}\n`);
  } else {
    io.stdout(made.value + '\n');
  }
  return ExitCode.ok;
};

export const tokenList: Handler<{ kubeconfig: string; output: string }> = async (a, io) => {
  const { adminClient, adminError, listTokens } = await lib();
  const { api } = await adminClient(a.kubeconfig);
  try {
    const rows = await listTokens(api).catch((err: unknown) => {
      throw adminError(err, a.kubeconfig);
    });
    if (a.output === 'json') {
      io.stdout(JSON.stringify(rows, null, 2) + '\n');
    } else {
      const table = [['ID', 'EXPIRES', 'GROUPS', 'USAGES', 'DESCRIPTION'],
        ...rows.map((r) => [r.id, r.expiration ? `${r.expiration}${r.expired ? ' (expired)' : ''}` : '<never>', r.groups.join(',') || '<none>', r.usages.join(','), r.description ?? ''])];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      io.stdout(table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n') + '\n');
    }
  } finally {
    await api.close();
  }
  return ExitCode.ok;
};

export const tokenDelete: Handler<{ kubeconfig: string; id: string }> = async (a, io) => {
  const { adminClient, adminError, deleteToken } = await lib();
  const { api } = await adminClient(a.kubeconfig);
  try {
    await deleteToken(api, a.id).catch((err: unknown) => {
      throw adminError(err, a.kubeconfig);
    });
  } finally {
    await api.close();
  }
  io.stdout(`bootstrap token ${a.id} deleted\n`);
  return ExitCode.ok;
};
