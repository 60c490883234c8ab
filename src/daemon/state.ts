// The state file each identity's daemon keeps for `tlsboot status`; here, apart from the
// daemon, so that status loads neither the daemon nor chokidar.
import path from 'node:path';
import { errorMessage } from '../base/errors.js';
import { writeFileAtomic } from '../base/fsutil.js';
import { redact, type Logger } from '../base/log.js';
import type { IdentityConfig } from './config.js';

/** What `tlsboot status` reads: <certDir>/.<prefix>.state.json (hidden: the visible layout stays kubelet's). */
export interface StateFile {
  identity: string;
  notAfter?: string;
  nextRotation?: string;
  lastError?: string;
  /** What the operator should know: a certificate from a CA the cluster no longer lists, no bootstrap credential left. */
  notes?: string[];
  hookFailures: Array<{ hook: string; failures: number; lastError: string }>;
  updated: string;
}

export function stateFilePath(cfg: IdentityConfig): string {
  return path.join(cfg.certDir, `.${cfg.identity.filePrefix}.state.json`);
}

/** Write it for `tlsboot status`: 0644 and read by anyone, so redacted as every log line is. */
export async function writeStateFile(cfg: IdentityConfig, state: StateFile, log: Logger): Promise<void> {
  await writeFileAtomic(stateFilePath(cfg), redact(JSON.stringify(state, null, 2)) + '\n', { mode: 0o644 }).catch((err: unknown) => {
    log.warn('could not write the state file', { file: stateFilePath(cfg), error: errorMessage(err) });
  });
}

/** One line for systemd's STATUS=: soonest expiry, next rotation, problems. */
export function statusLine(ids: Array<{ name: string; state?: { notAfter: Date; deadline: Date }; lastError?: string }>, failing: Array<{ hook: string; identity: string }>): string {
  const valid = ids.filter((s) => s.state);
  const parts: string[] = [];
  if (valid.length < ids.length) parts.push(`${ids.length - valid.length} of ${ids.length} identities without a certificate`);
  if (valid.length > 0) {
    const soonest = valid.reduce((a, b) => (a.state!.notAfter < b.state!.notAfter ? a : b));
    const next = valid.reduce((a, b) => (a.state!.deadline < b.state!.deadline ? a : b));
    parts.push(`expires ${soonest.state!.notAfter.toISOString()} (${soonest.name})`, `next rotation ${next.state!.deadline.toISOString()} (${next.name})`);
  }
  if (failing.length > 0) parts.push(`${failing.length} hook(s) failing: ${failing.map((f) => `${f.hook} (${f.identity})`).join(', ')}`);
  const errors = ids.filter((s) => s.lastError);
  if (errors.length > 0) parts.push(`errors: ${errors.map((s) => `${s.name}: ${s.lastError}`).join('; ')}`);
  return parts.join('; ') || 'starting';
}
