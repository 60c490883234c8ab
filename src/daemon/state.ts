// The state file each identity's daemon keeps for `tlsboot status`; here, apart from the
// daemon, so that status loads neither the daemon nor chokidar.
import path from 'node:path';
import type { IdentityConfig } from './config.js';

/** What `tlsboot status` reads: <certDir>/.<prefix>.state.json (hidden: the visible layout stays kubelet's). */
export interface StateFile {
  identity: string;
  notAfter?: string;
  nextRotation?: string;
  lastError?: string;
  hookFailures: Array<{ hook: string; failures: number; lastError: string }>;
  updated: string;
}

export function stateFilePath(cfg: IdentityConfig): string {
  return path.join(cfg.certDir, `.${cfg.identity.filePrefix}.state.json`);
}
