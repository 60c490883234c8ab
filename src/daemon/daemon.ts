// Runs every identity of a config: one Agent each, then outputs, hooks, systemd notification,
// metrics and a state file per identity (for `tlsboot status`). Readiness means every identity
// has a valid certificate on disk. SIGHUP (or an edit of the config file) reloads; an invalid
// config keeps the old one running. Outputs changed or deleted by hand are restored.
import { watch, type FSWatcher } from 'chokidar';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Agent, type CredentialState } from '../node/agent.js';
import { loadConfig, type DaemonConfig, type IdentityConfig } from './config.js';
import { ExitCode, TlsbootError, errorMessage, errorReason, type ExitCodeValue } from '../base/errors.js';
import { checkFolderPath, writeFileAtomic } from '../base/fsutil.js';
import { HookRunner } from './hooks.js';
import { readKubeconfig } from '../kube/kubeconfig.js';
import { redact, type Logger } from '../base/log.js';
import { Metrics } from './metrics.js';
import type { Notifier } from '../base/notify.js';
import { resolveOutputs, writeOutputs, type ResolvedOutput } from './outputs.js';
import { stateFilePath, type StateFile } from './state.js';

export interface DaemonOptions {
  log: Logger;
  notifier: Notifier;
  systemctl?: string;
  /** Hook retry base (tests shorten it). */
  hookRetryBaseMs?: number;
  /** --once: hooks run once, without retries. */
  once?: boolean;
  /** --once: how long an identity retries failures before it gives up (--retry-timeout). */
  retryTimeoutMs?: number;
}

/** Every folder an identity writes to can exist: checked before any key is made. */
async function checkPaths(cfg: IdentityConfig, file: string | undefined): Promise<void> {
  const setting = (flag: string, key: string): string => (file ? `${file}: identity ${cfg.name}: ${key}` : flag);
  await checkFolderPath(cfg.certDir, setting('--cert-dir', 'certDir'));
  await checkFolderPath(path.dirname(cfg.kubeconfig), setting('--kubeconfig', 'kubeconfig'), cfg.kubeconfig);
  for (const [i, o] of cfg.outputs.entries()) await checkFolderPath(path.dirname(o.path), setting('', `outputs[${i}].path`), o.path);
}

interface Slot {
  cfg: IdentityConfig;
  agent: Agent;
  outputs: ResolvedOutput[];
  state?: CredentialState;
  lastError?: string;
  fatal?: TlsbootError;
  controller: AbortController;
  wake: AbortController;
  done?: Promise<void>;
}

export class Daemon {
  private config: DaemonConfig;
  private readonly opts: DaemonOptions;
  private readonly log: Logger;
  private readonly metrics = new Metrics();
  private readonly hooks: HookRunner;
  private slots: Slot[] = [];
  private readySent = false;
  private watcher: FSWatcher | undefined;
  private stopping = false;
  private stateWrites: Promise<void> = Promise.resolve();
  private reloadChain: Promise<void> = Promise.resolve();
  private configTimer: NodeJS.Timeout | undefined;
  private readonly fatal = new AbortController();
  metricsPort: number | undefined;

  constructor(config: DaemonConfig, opts: DaemonOptions) {
    this.config = config;
    this.opts = opts;
    this.log = opts.log;
    this.hooks = new HookRunner({
      log: this.log,
      ...(opts.systemctl ? { systemctl: opts.systemctl } : {}),
      ...(opts.hookRetryBaseMs ? { retryBaseMs: opts.hookRetryBaseMs } : {}),
      retry: !opts.once,
      onResult: (identity, hook, ok) => {
        if (!ok) this.metrics.hookFailures.inc({ identity, hook });
        for (const slot of this.slots) this.saveState(slot);
        void this.opts.notifier.status(this.statusLine());
      },
    });
  }

  /** --once: a valid certificate (and outputs) for every identity; hooks run once if it changed. */
  async runOnce(signal: AbortSignal): Promise<ExitCodeValue> {
    this.slots = await this.buildSlots(this.config, true);
    const results = await Promise.allSettled(this.slots.map(async (slot) => {
      const state = await slot.agent.ensure(signal);
      await this.onValid(slot, state);
      this.log.info('a valid client certificate is on disk', {
        identity: slot.cfg.name, file: state.file, notAfter: state.notAfter.toISOString(), nextRotation: state.deadline.toISOString(),
      });
    }));
    await this.hooks.idle();
    this.hooks.stop();
    await this.stateWrites;
    let code: ExitCodeValue = ExitCode.ok;
    if (signal.aborted && results.some((r) => r.status === 'rejected')) {
      // A stop on request is not a failure to report, but the job was not done either.
      this.log.info('stopped before every identity had a valid certificate', { signal: errorMessage(signal.reason) });
      return ExitCode.interrupted;
    }
    for (const [i, r] of results.entries()) {
      if (r.status === 'rejected') {
        const err = r.reason as unknown;
        this.log.error(errorMessage(err), { identity: this.slots[i]!.cfg.name });
        const c = err instanceof TlsbootError ? err.exitCode : ExitCode.runtime;
        if (c > code) code = c;
      }
    }
    if (this.hooks.failing().length > 0 && code === ExitCode.ok) code = ExitCode.runtime;
    return code;
  }

  /** Run until the signal aborts. Resolves with the exit code. */
  async run(signal: AbortSignal): Promise<ExitCodeValue> {
    if (this.config.metrics) {
      this.metricsPort = await this.metrics.listen(this.config.metrics.address, () => this.isReady());
      this.log.info('serving metrics', { address: this.config.metrics.address, port: this.metricsPort });
    }
    this.opts.notifier.startWatchdog();
    this.slots = await this.buildSlots(this.config, false);
    await this.startWatching();
    await this.startSlots(this.slots);
    // An identity that failed for good (denied, misconfigured) ends the run: the others' files
    // stay valid on disk, and systemd shows the failure instead of waiting for READY for ever.
    const end = AbortSignal.any([signal, this.fatal.signal]);
    if (!end.aborted) await new Promise((resolve) => end.addEventListener('abort', resolve, { once: true }));
    return this.shutdown();
  }

  /** SIGUSR1: rotate every identity now. */
  rotateNow(): void {
    for (const s of this.slots) s.wake.abort();
  }

  /** SIGHUP or an edit of the config file: reload; an invalid config keeps the running one. */
  reload(): Promise<void> {
    this.reloadChain = this.reloadChain.then(() => this.doReload());
    return this.reloadChain;
  }

  private async doReload(): Promise<void> {
    if (!this.config.file || this.stopping) return;
    let next: DaemonConfig;
    let slots: Slot[];
    try {
      next = await loadConfig(this.config.file);
      if (this.config.metrics?.address !== next.metrics?.address) this.log.warn('metrics.address changes take effect on restart');
      slots = await this.buildSlots(next, false);
    } catch (err) {
      this.log.error('the new configuration is invalid; keeping the running one', { error: errorMessage(err) });
      await this.opts.notifier.status(`config reload failed: ${errorMessage(err)}; ${this.statusLine()}`);
      return;
    }
    await this.opts.notifier.reloading();
    this.log.info('reloading the configuration', { file: this.config.file, identities: next.identities.length });
    await this.stopSlots();
    this.config = next;
    this.readySent = false;
    this.slots = slots;
    await this.startWatching();
    await this.startSlots(slots);
  }

  private async buildSlots(config: DaemonConfig, once: boolean): Promise<Slot[]> {
    const slots: Slot[] = [];
    for (const cfg of config.identities) {
      await checkPaths(cfg, config.file);
      const outputs = await resolveOutputs(cfg.outputs, `identity ${cfg.name}`);
      // The callbacks run later, once `slot` holds the agent they belong to.
      let slot: Slot | undefined;
      const agent = new Agent({
        ...cfg, once,
        ...(this.opts.retryTimeoutMs !== undefined ? { retryTimeoutMs: this.opts.retryTimeoutMs } : {}),
        log: config.identities.length > 1 ? prefixed(this.log, cfg.name) : this.log,
        onCertificate: (state) => this.onCertificate(slot!, state),
        onValid: (state) => this.onValid(slot!, state),
        onAttemptError: (err) => this.onAttemptError(slot!, err),
      });
      slot = { cfg, outputs, agent, controller: new AbortController(), wake: new AbortController() };
      slots.push(slot);
    }
    return slots;
  }

  private async startSlots(slots: Slot[]): Promise<void> {
    this.slots = slots;
    await this.opts.notifier.status(this.statusLine());
    for (const slot of slots) {
      slot.done = slot.agent.run(slot.controller.signal, () => {
        if (slot.wake.signal.aborted) slot.wake = new AbortController();
        return slot.wake.signal;
      }).catch((err: unknown) => {
        if (slot.controller.signal.aborted) return;
        slot.fatal = err instanceof TlsbootError ? err : new TlsbootError(errorMessage(err));
        slot.lastError = errorMessage(err);
        this.log.error('identity stopped: it needs attention', { identity: slot.cfg.name, error: slot.lastError });
        this.saveState(slot);
        void this.opts.notifier.status(this.statusLine());
        this.fatal.abort();
      });
    }
  }

  private async stopSlots(): Promise<void> {
    for (const s of this.slots) s.controller.abort(new Error('stopping'));
    await Promise.all(this.slots.map((s) => s.done));
    for (const s of this.slots) this.metrics.forget(s.cfg.name);
  }

  private async onCertificate(slot: Slot, state: CredentialState): Promise<void> {
    this.metrics.rotations.inc({ identity: slot.cfg.name });
    if (state.issuanceSeconds !== undefined) this.metrics.issuance.observe({ identity: slot.cfg.name }, state.issuanceSeconds);
    slot.state = state;
    const changed = await this.syncOutputs(slot);
    this.hooks.trigger(slot.cfg.hooks, {
      identity: slot.cfg.name, certFile: state.file, kubeconfig: slot.cfg.kubeconfig,
      changed: [state.file, slot.agent.store.currentPath, ...changed],
    });
  }

  private async onValid(slot: Slot, state: CredentialState): Promise<void> {
    slot.state = state;
    delete slot.lastError;
    this.metrics.certificate(slot.cfg.name, state.notAfter, state.deadline);
    await this.syncOutputs(slot);
    this.saveState(slot);
    await this.stateWrites;
    if (this.isReady() && !this.readySent) {
      this.readySent = true;
      await this.opts.notifier.ready(this.statusLine());
      this.log.info('ready: every identity has a valid certificate on disk', { identities: this.slots.length });
    } else {
      await this.opts.notifier.status(this.statusLine());
    }
  }

  private onAttemptError(slot: Slot, err: unknown): void {
    slot.lastError = errorMessage(err);
    this.metrics.rotationErrors.inc({ identity: slot.cfg.name, reason: errorReason(err) });
    this.saveState(slot);
    void this.opts.notifier.status(this.statusLine());
  }

  /** Bring the extra outputs in line with the current certificate; returns what was written. */
  private async syncOutputs(slot: Slot): Promise<string[]> {
    if (slot.outputs.length === 0) return [];
    const current = await slot.agent.store.current();
    if (!current) return [];
    const caPem = (await readKubeconfig(slot.cfg.kubeconfig).catch(() => undefined))?.caPem;
    const written = await writeOutputs(slot.outputs, { chainPem: current.chainPem, keyPem: current.keyPem, ...(caPem ? { caPem } : {}) }, `identity ${slot.cfg.name}`);
    if (written.length > 0) this.log.info('wrote outputs', { identity: slot.cfg.name, files: written.join(',') });
    return written;
  }

  /**
   * Watch output folders (chokidar sees nothing for a file whose folder does not exist yet, so
   * the folders are made now, as the first write would), the bootstrap inputs and the config.
   */
  private async startWatching(): Promise<void> {
    await this.watcher?.close();
    const outputs = new Map<string, Slot>();
    const inputs: string[] = [];
    for (const s of this.slots) {
      for (const o of s.outputs) outputs.set(o.path, s);
      if (s.cfg.bootstrapKubeconfig) inputs.push(s.cfg.bootstrapKubeconfig);
      if (s.cfg.bootstrapTokenFile) inputs.push(s.cfg.bootstrapTokenFile);
    }
    const dirs = [...new Set([...outputs.keys()].map((f) => path.dirname(f)))];
    for (const d of dirs) await fs.mkdir(d, { recursive: true, mode: 0o755 });
    const targets = [...dirs, ...inputs, ...(this.config.file ? [this.config.file] : [])];
    if (targets.length === 0) return;
    // No awaitWriteFinish: it swallows a delete that follows our own write closely, and outputs
    // converge anyway (they are compared with what they should hold).
    const watcher = watch(targets, { ignoreInitial: true, depth: 0 });
    this.watcher = watcher;
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    watcher.on('all', (event, file) => {
      const abs = path.resolve(file);
      this.log.debug(4, 'file event', { event, file: abs });
      const slot = outputs.get(abs);
      if (slot && ['unlink', 'change', 'add'].includes(event) && slot.state) {
        void this.syncOutputs(slot).then((written) => {
          if (written.includes(abs)) this.log.warn('restored an output that was changed or removed', { identity: slot.cfg.name, file: abs, event });
        }).catch((err: unknown) => this.log.error('could not restore an output', { file: abs, error: errorMessage(err) }));
      } else if (abs === this.config.file && (event === 'change' || event === 'add')) {
        // An editor may write in several steps: reload once it has been quiet for a moment.
        clearTimeout(this.configTimer);
        this.configTimer = setTimeout(() => {
          this.log.info('the config file changed; reloading', { file: abs });
          void this.reload();
        }, 300);
      } else if (inputs.includes(abs)) {
        this.log.info('bootstrap credentials changed; they are used from the next attempt', { file: abs, event });
      }
    });
  }

  private isReady(): boolean {
    return this.slots.length > 0 && this.slots.every((s) => s.state && s.state.notAfter.getTime() > Date.now());
  }

  /** One line for systemd's STATUS=: soonest expiry, next rotation, problems. */
  statusLine(): string {
    const valid = this.slots.filter((s) => s.state);
    const parts: string[] = [];
    if (valid.length < this.slots.length) parts.push(`${this.slots.length - valid.length} of ${this.slots.length} identities without a certificate`);
    if (valid.length > 0) {
      const soonest = valid.reduce((a, b) => (a.state!.notAfter < b.state!.notAfter ? a : b));
      const next = valid.reduce((a, b) => (a.state!.deadline < b.state!.deadline ? a : b));
      parts.push(`expires ${soonest.state!.notAfter.toISOString()} (${soonest.cfg.name})`, `next rotation ${next.state!.deadline.toISOString()} (${next.cfg.name})`);
    }
    const failing = this.hooks.failing();
    if (failing.length > 0) parts.push(`${failing.length} hook(s) failing: ${failing.map((f) => `${f.hook} (${f.identity})`).join(', ')}`);
    const errors = this.slots.filter((s) => s.lastError);
    if (errors.length > 0) parts.push(`errors: ${errors.map((s) => `${s.cfg.name}: ${s.lastError}`).join('; ')}`);
    return parts.join('; ') || 'starting';
  }

  /**
   * Queue a state file write. Writes run one at a time (never two renames racing for one file)
   * and run() and runOnce() wait for the queue, so nothing is still writing when they return.
   */
  private saveState(slot: Slot): void {
    this.stateWrites = this.stateWrites.then(() => this.writeState(slot));
  }

  private async writeState(slot: Slot): Promise<void> {
    const st: StateFile = {
      identity: slot.cfg.name,
      hookFailures: this.hooks.failing().filter((f) => f.identity.split(',').includes(slot.cfg.name)).map(({ hook, failures, lastError }) => ({ hook, failures, lastError })),
      updated: new Date().toISOString(),
    };
    if (slot.state) {
      st.notAfter = slot.state.notAfter.toISOString();
      st.nextRotation = slot.state.deadline.toISOString();
    }
    if (slot.lastError) st.lastError = slot.lastError;
    // 0644 and read by anyone: redacted, as every log line is.
    await writeFileAtomic(stateFilePath(slot.cfg), redact(JSON.stringify(st, null, 2)) + '\n', { mode: 0o644 }).catch((err: unknown) => {
      this.log.warn('could not write the state file', { file: stateFilePath(slot.cfg), error: errorMessage(err) });
    });
  }

  private async shutdown(): Promise<ExitCodeValue> {
    this.stopping = true;
    clearTimeout(this.configTimer);
    await this.opts.notifier.stopping();
    await this.watcher?.close();
    await this.stopSlots();
    this.hooks.stop();
    await this.metrics.close();
    await this.stateWrites;
    await this.opts.notifier.flush();
    return this.slots.map((s) => s.fatal).find(Boolean)?.exitCode ?? ExitCode.ok;
  }
}

function prefixed(log: Logger, identity: string): Logger {
  return {
    error: (m, f) => log.error(m, { identity, ...f }),
    warn: (m, f) => log.warn(m, { identity, ...f }),
    info: (m, f) => log.info(m, { identity, ...f }),
    debug: (l, m, f) => log.debug(l, m, { identity, ...f }),
  };
}
