// How failures are told, so that an outage does not flood the journal: thousands of identities
// retrying every few seconds used to write 10 lines each in one minute. An identity says its
// first failure, then at most one line a minute while the same error goes on, then that it
// recovered. When several identities of one daemon fail with the same error, one summary line a
// minute (sooner while their number doubles) stands for all of them. Each attempt's detail stays at debug level (-v 1).
import type { Fields, Logger } from '../base/log.js';
import { formatDuration } from '../base/time.js';

/** How often a failure that goes on is told again. */
export const REPEAT_MS = 60_000;
/** How long a group of identities failing alike gathers before its first summary. */
export const GATHER_MS = 5_000;

interface Failing {
  message: string;
  since: number;
  attempts: number;
  lastLine: number;
}

interface Group {
  members: Set<string>;
  formed: number;
  lastSummary: number;
  /** How many it counted in its last summary. */
  told: number;
}

/** The failure log of one process, shared by its identities. */
export class FailureLog {
  private readonly failing = new Map<string, Failing>();
  private readonly groups = new Map<string, Group>();

  /** `log` writes the summaries; `now` is the clock (tests). */
  constructor(private readonly log: Logger, private readonly now: () => number = Date.now) {}

  /** An attempt of `identity` failed with `message`; `idLog` is that identity's logger. */
  failed(identity: string, idLog: Logger, message: string, detail: Fields): void {
    const now = this.now();
    idLog.debug(1, 'attempt failed', { error: message, ...detail });
    const was = this.failing.get(identity);
    if (was?.message === message) {
      was.attempts++;
      this.repeat(identity, idLog, was, now);
    } else {
      if (was) this.leave(identity, was.message);
      const f: Failing = { message, since: now, attempts: 1, lastLine: now };
      this.failing.set(identity, f);
      const group = this.join(identity, message, now);
      // Alone with this error: said now. Otherwise the group's summary says it.
      if (group.members.size === 1) idLog.warn('could not get a certificate; retrying', { error: message, ...detail });
    }
    this.summarise(message, now);
  }

  /** `identity` has a valid certificate again; says so if it had failed. */
  recovered(identity: string, idLog: Logger): void {
    const was = this.failing.get(identity);
    if (!was) return;
    this.failing.delete(identity);
    this.leave(identity, was.message);
    idLog.info('recovered: a valid certificate is on disk again', { failedAttempts: was.attempts, failingFor: formatDuration(this.now() - was.since) });
  }

  /** `identity` is gone (a reload dropped it): no longer counted in any summary, and says nothing. */
  forget(identity: string): void {
    const was = this.failing.get(identity);
    if (!was) return;
    this.failing.delete(identity);
    this.leave(identity, was.message);
  }

  private repeat(identity: string, idLog: Logger, f: Failing, now: number): void {
    if (now - f.lastLine < REPEAT_MS || (this.groups.get(f.message)?.members.size ?? 0) > 1) return;
    f.lastLine = now;
    idLog.warn('still failing the same way; retrying', { error: f.message, attempts: f.attempts, failingFor: formatDuration(now - f.since) });
  }

  private summarise(message: string, now: number): void {
    const g = this.groups.get(message);
    if (!g || g.members.size < 2 || now - g.formed < GATHER_MS) return;
    // Once a minute, or sooner while the group is still doubling (a fleet failing in turn).
    if (now - g.lastSummary < REPEAT_MS && !(now - g.lastSummary >= GATHER_MS && g.members.size >= 2 * g.told)) return;
    g.lastSummary = now;
    g.told = g.members.size;
    const oldest = Math.min(...[...g.members].map((id) => this.failing.get(id)?.since ?? now));
    this.log.warn(`${g.members.size} identities fail with the same error; retrying`, {
      error: message, identities: g.members.size, failingFor: formatDuration(now - oldest), some: [...g.members].slice(0, 3).join(','),
    });
  }

  private join(identity: string, message: string, now: number): Group {
    let g = this.groups.get(message);
    if (!g) this.groups.set(message, (g = { members: new Set(), formed: now, lastSummary: -Infinity, told: 0 }));
    g.members.add(identity);
    return g;
  }

  private leave(identity: string, message: string): void {
    const g = this.groups.get(message);
    g?.members.delete(identity);
    if (g && g.members.size === 0) this.groups.delete(message);
  }
}
