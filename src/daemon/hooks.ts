// Reload hooks, run after a new certificate is in place. They never block rotation: each runs
// in the background, failures retry with backoff until they succeed or a newer certificate
// supersedes them, and the failing ones are reported (status, metrics, systemd STATUS).
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { HookSpec } from './config.js';
import { errorMessage } from '../base/errors.js';
import { backoffMs } from '../base/time.js';
import type { Logger } from '../base/log.js';

export interface HookEvent {
  identity: string;
  certFile: string;
  kubeconfig: string;
  changed: string[];
}

export interface HookFailure {
  identity: string;
  hook: string;
  failures: number;
  lastError: string;
}

export interface HookRunnerOptions {
  log: Logger;
  /** The systemctl to run (tests point this at a recorder; there is no systemd PID 1 there). */
  systemctl?: string;
  /** Several identities changing within this window reload a unit once. */
  debounceMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  onResult?: (identity: string, hook: string, ok: boolean) => void;
  /** Retry failed hooks (the daemon); false runs each once (--once). Default true. */
  retry?: boolean;
}

interface Job {
  key: string;
  identities: Set<string>;
  hook: string;
  run: () => Promise<void>;
  failures: number;
  lastError?: string;
  timer?: NodeJS.Timeout;
  generation: number;
}

const MAX_OUTPUT = 4096;

export function describeHook(h: HookSpec): string {
  switch (h.kind) {
    case 'exec':
      return `exec ${h.argv.join(' ')}`;
    case 'reloadUnit':
      return `reload ${h.unit}`;
    case 'signal':
      return `${h.signal} to the pid in ${h.pidFile}`;
  }
}

export class HookRunner {
  private readonly opts: HookRunnerOptions;
  private readonly jobs = new Map<string, Job>();
  private stopped = false;

  constructor(opts: HookRunnerOptions) {
    this.opts = opts;
  }

  trigger(hooks: HookSpec[], event: HookEvent): void {
    for (const [i, h] of hooks.entries()) {
      // A unit is one job across identities, so identities changing together reload it once.
      const key = h.kind === 'reloadUnit' ? `unit:${h.unit}` : `${event.identity}:${i}`;
      const existing = this.jobs.get(key);
      const job: Job = existing ?? { key, identities: new Set(), hook: describeHook(h), run: async () => undefined, failures: 0, generation: 0 };
      job.identities.add(event.identity);
      job.run = () => this.execute(h, event);
      job.generation++;
      job.failures = 0;
      if (job.timer) clearTimeout(job.timer);
      this.jobs.set(key, job);
      this.schedule(job, h.kind === 'reloadUnit' ? (this.opts.debounceMs ?? 500) : 0);
    }
  }

  failing(): HookFailure[] {
    return [...this.jobs.values()].filter((j) => j.lastError !== undefined)
      .map((j) => ({ identity: [...j.identities].join(','), hook: j.hook, failures: j.failures, lastError: j.lastError! }));
  }

  /** Resolves when no hook is due or running (for --once and tests). */
  async idle(timeoutMs = 60_000): Promise<void> {
    const start = Date.now();
    while ([...this.jobs.values()].some((j) => j.timer !== undefined) && Date.now() - start < timeoutMs) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const j of this.jobs.values()) if (j.timer) clearTimeout(j.timer);
  }

  private schedule(job: Job, delayMs: number): void {
    const generation = job.generation;
    job.timer = setTimeout(() => void this.attempt(job, generation), delayMs);
  }

  private async attempt(job: Job, generation: number): Promise<void> {
    if (this.stopped) return;
    const who = [...job.identities].join(',');
    try {
      await job.run();
      if (job.generation !== generation) return;
      job.timer = undefined;
      job.failures = 0;
      delete job.lastError;
      job.identities.clear();
      this.opts.log.info('hook ran', { hook: job.hook, identity: who });
      this.opts.onResult?.(who, job.hook, true);
    } catch (err) {
      if (job.generation !== generation) return;
      job.failures++;
      job.lastError = errorMessage(err);
      const delay = backoffMs(job.failures, { baseMs: this.opts.retryBaseMs ?? 2000, capMs: this.opts.retryMaxMs ?? 300_000, jitter: 0.1 });
      this.opts.log.warn(this.opts.retry === false ? 'hook failed' : 'hook failed; will retry', {
        hook: job.hook, identity: who, error: job.lastError, attempt: job.failures, ...(this.opts.retry === false ? {} : { retryInMs: Math.round(delay) }),
      });
      this.opts.onResult?.(who, job.hook, false);
      if (this.opts.retry === false) job.timer = undefined;
      else if (!this.stopped) this.schedule(job, delay);
    }
  }

  private async execute(h: HookSpec, ev: HookEvent): Promise<void> {
    switch (h.kind) {
      case 'exec':
        return runCommand(h.argv, h.timeoutMs, {
          TLSBOOT_IDENTITY: ev.identity, TLSBOOT_CERT_FILE: ev.certFile, TLSBOOT_KUBECONFIG: ev.kubeconfig,
          TLSBOOT_CHANGED_FILES: ev.changed.join(':'),
        });
      case 'reloadUnit':
        return runCommand([this.opts.systemctl ?? 'systemctl', 'try-reload-or-restart', h.unit], 60_000, {});
      case 'signal': {
        const text = (await fs.readFile(h.pidFile, 'utf8').catch((e: Error) => {
          throw new Error(`cannot read ${h.pidFile}: ${e.message}`);
        })).trim();
        const pid = Number(text.split(/\s+/)[0]);
        if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${h.pidFile} does not hold a process id`);
        process.kill(pid, h.signal);
        return;
      }
    }
  }
}

/** Run argv without a shell; fail on non-zero exit or after the timeout (SIGTERM, then SIGKILL). */
function runCommand(argv: string[], timeoutMs: number, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (d: Buffer): void => {
      if (output.length < MAX_OUTPUT) output += d.toString().slice(0, MAX_OUTPUT - output.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${argv[0]}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const tail = output.trim().split('\n').slice(-3).join(' | ');
      if (timedOut) reject(new Error(`${argv[0]} timed out after ${timeoutMs / 1000} s`));
      else if (code !== 0) reject(new Error(`${argv[0]} exited with ${code ?? signal}${tail ? `: ${tail}` : ''}`));
      else resolve();
    });
  });
}
