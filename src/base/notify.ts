// sd_notify through the systemd-notify CLI (Node has no AF_UNIX datagram sockets). Messages
// are sent in order, one process each; the unit needs NotifyAccess=all because the sender is a
// child of the main process. Without NOTIFY_SOCKET nothing is sent.
import { execFile } from 'node:child_process';
import { errorMessage } from './errors.js';
import { redact, type Logger } from './log.js';

export class Notifier {
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: Logger;
  private readonly binary: string;
  private chain: Promise<void> = Promise.resolve();
  private watchdog: NodeJS.Timeout | undefined;

  constructor(log: Logger, env: NodeJS.ProcessEnv = process.env, binary = 'systemd-notify') {
    this.log = log;
    this.env = env;
    this.binary = binary;
  }

  get enabled(): boolean {
    return Boolean(this.env['NOTIFY_SOCKET']);
  }

  ready(status: string): Promise<void> {
    return this.send({ READY: '1', STATUS: status });
  }

  status(status: string): Promise<void> {
    return this.send({ STATUS: status });
  }

  /** systemd >= 253 wants MONOTONIC_USEC with RELOADING=1; older ones ignore it. */
  reloading(): Promise<void> {
    return this.send({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n), STATUS: 'reloading the configuration' });
  }

  stopping(): Promise<void> {
    this.stopWatchdog();
    return this.send({ STOPPING: '1', STATUS: 'stopping' });
  }

  /** WATCHDOG=1 at half of WATCHDOG_USEC, when the watchdog is meant for this process. */
  startWatchdog(): void {
    const usec = Number(this.env['WATCHDOG_USEC'] ?? 0);
    const pid = this.env['WATCHDOG_PID'];
    if (!this.enabled || !(usec > 0) || (pid && Number(pid) !== process.pid)) return;
    const every = Math.max(100, usec / 2000);
    this.watchdog = setInterval(() => void this.send({ WATCHDOG: '1' }), every);
    this.watchdog.unref();
    void this.send({ WATCHDOG: '1' });
  }

  stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  send(fields: Record<string, string>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    // Arguments are visible to every local user (ps): redacted, as every log line is.
    const args = Object.entries(fields).map(([k, v]) => `${k}=${redact(v.replace(/\n/g, ' '))}`);
    this.chain = this.chain.then(() => new Promise<void>((resolve) => {
      execFile(this.binary, args, { env: this.env, timeout: 5000 }, (err) => {
        if (err) this.log.warn('could not notify systemd', { error: errorMessage(err) });
        resolve();
      });
    }));
    return this.chain;
  }

  /** Wait for messages already queued (before exit). */
  flush(): Promise<void> {
    return this.chain;
  }
}
