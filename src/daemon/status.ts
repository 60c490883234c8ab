// `tlsboot status`: what is on disk for each identity, read without talking to the cluster.
// Exit 0 all fine; 1 a certificate in its last 10 % of life, or a hook failing; 2 a certificate
// missing or expired.
import { promises as fs } from 'node:fs';
import type { DaemonConfig } from './config.js';
import { stateFilePath, type StateFile } from './state.js';
import { errorMessage, type ExitCodeValue } from '../base/errors.js';
import { rotationWindow } from '../node/deadline.js';
import { CertStore } from '../node/store.js';

export interface IdentityStatus {
  identity: string;
  file: string;
  state: 'ok' | 'expiring' | 'hook-failing' | 'missing' | 'expired' | 'unreadable';
  subject?: string;
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  nextRotation?: string;
  lastError?: string;
  notes: string[];
  hookFailures: StateFile['hookFailures'];
}

const CODE: Record<IdentityStatus['state'], ExitCodeValue> = { ok: 0, expiring: 1, 'hook-failing': 1, missing: 2, expired: 2, unreadable: 2 };

export async function readStatus(config: DaemonConfig, now = new Date()): Promise<{ code: ExitCodeValue; identities: IdentityStatus[] }> {
  const identities: IdentityStatus[] = [];
  for (const cfg of config.identities) {
    const store = new CertStore(cfg.certDir, cfg.identity.filePrefix);
    const saved = await readState(stateFilePath(cfg));
    const s: IdentityStatus = { identity: cfg.name, file: store.currentPath, state: 'missing', notes: saved?.notes ?? [], hookFailures: saved?.hookFailures ?? [] };
    if (saved?.lastError) s.lastError = saved.lastError;
    try {
      const current = await store.current();
      if (current) {
        const leaf = current.chain[0]!;
        const life = leaf.notAfter.getTime() - leaf.notBefore.getTime();
        const window = rotationWindow(leaf.notBefore, leaf.notAfter);
        Object.assign(s, {
          subject: `CN=${leaf.subject.commonName}${leaf.subject.organizations.map((o) => `, O=${o}`).join('')}`,
          issuer: leaf.issuer, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString(),
        });
        s.nextRotation = saved?.nextRotation && saved.notAfter === s.notAfter
          ? saved.nextRotation
          : `${window.from.toISOString()}..${window.to.toISOString()}`;
        if (leaf.notAfter.getTime() <= now.getTime()) s.state = 'expired';
        else if (leaf.notAfter.getTime() - now.getTime() < 0.1 * life) s.state = 'expiring';
        else if (s.hookFailures.length > 0) s.state = 'hook-failing';
        else s.state = 'ok';
      }
    } catch (err) {
      s.state = 'unreadable';
      s.lastError = errorMessage(err);
    }
    identities.push(s);
  }
  const code = identities.reduce<ExitCodeValue>((c, s) => (CODE[s.state] > c ? CODE[s.state] : c), 0);
  return { code, identities };
}

export function formatStatus(list: IdentityStatus[]): string {
  return list.map((s) => {
    const lines = [`${s.identity}: ${s.state}`, `  file:          ${s.file}`];
    if (s.subject) lines.push(`  subject:       ${s.subject}`, `  issuer:        ${s.issuer}`, `  not before:    ${s.notBefore}`, `  not after:     ${s.notAfter}`, `  next rotation: ${s.nextRotation}`);
    if (s.lastError) lines.push(`  last error:    ${s.lastError}`);
    for (const n of s.notes) lines.push(`  note:          ${n}`);
    for (const h of s.hookFailures) lines.push(`  hook failing:  ${h.hook} (${h.failures} times): ${h.lastError}`);
    return lines.join('\n');
  }).join('\n') + '\n';
}

async function readState(file: string): Promise<StateFile | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as StateFile;
  } catch {
    return undefined;
  }
}
