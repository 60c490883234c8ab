// Runs every identity of a config: one Agent each, then outputs, hooks, systemd notification,
// metrics and a state file per identity (for `tlsboot status`). Readiness means every identity
// has a valid certificate on disk. SIGHUP (or an edit of the config file) reloads; an invalid
// config keeps the old one running. Outputs changed or deleted by hand are restored.
import { DEFAULT_API_CONCURRENCY, DEFAULT_API_QPS, RequestLimiter } from '../kube/limiter.js';
import { FailureLog } from '../node/failures.js';
import { ExitCode, TlsbootError, errorMessage, errorReason, worstExitCode, type ExitCodeValue } from '../base/errors.js';
import { prefixed, type Logger } from '../base/log.js';
import type { Notifier } from '../base/notify.js';
import { Agent, type CredentialState } from '../node/agent.js';
import { checkPaths, loadConfig, type DaemonConfig, type IdentityConfig } from './config.js';
import { HookRunner } from './hooks.js';
import { Metrics } from './metrics.js';
import { resolveOutputs, syncOutputs, type ResolvedOutput } from './outputs.js';
import { statusLine, writeStateFile, type StateFile } from './state.js';
import { watchFiles, type FileWatch } from './watch.js';

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
  private watcher: FileWatch | undefined;
  private stopping = false;
  private stateWrites: Promise<void> = Promise.resolve();
  private reloadChain: Promise<void> = Promise.resolve();
  private readonly fatal = new AbortController();
  /** One for all identities: they share the API servers' capacity. */
  private readonly limiter: RequestLimiter;
  private readonly failures: FailureLog;
  metricsPort: number | undefined;

  constructor(config: DaemonConfig, opts: DaemonOptions) {
    this.config = config;
    this.opts = opts;
    this.log = opts.log;
    this.limiter = new RequestLimiter(config.apiConcurrency ?? DEFAULT_API_CONCURRENCY, config.apiQps ?? DEFAULT_API_QPS);
    this.failures = new FailureLog(this.log);
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
      this.log.info(`a valid ${slot.agent.kind} certificate is on disk`, {
        identity: slot.cfg.name, file: state.file, notAfter: state.notAfter.toISOString(), nextRotation: state.deadline.toISOString(),
      });
    }));
    await this.hooks.idle();
    this.hooks.stop();
    await this.stateWrites;
    if (signal.aborted && results.some((r) => r.status === 'rejected')) {
      // A stop on request is not a failure to report, but the job was not done either.
      this.log.info('stopped before every identity had a valid certificate', { signal: errorMessage(signal.reason) });
      return ExitCode.interrupted;
    }
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ err: r.reason as unknown, identity: this.slots[i]!.cfg.name }] : []));
    for (const f of failed) this.log.error(errorMessage(f.err), { identity: f.identity });
    const code = worstExitCode(failed.map((f) => f.err));
    return code === ExitCode.ok && this.hooks.failing().length > 0 ? ExitCode.runtime : code;
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
      if (this.config.apiConcurrency !== next.apiConcurrency || this.config.apiQps !== next.apiQps) this.log.warn('apiConcurrency and apiQps changes take effect on restart');
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
        limiter: this.limiter, failures: this.failures, name: cfg.name,
        onResponse: (status) => this.onResponse(cfg.name, status),
        onTrustChanged: () => this.onTrustChanged(slot!),
        onTrustChecked: (note) => {
          this.metrics.issuerUnlisted.set({ identity: cfg.name }, note ? 1 : 0);
          this.saveState(slot!);
        },
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
    for (const s of this.slots) {
      this.metrics.forget(s.cfg.name);
      this.failures.forget(s.cfg.name);
    }
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

  /** New CAs in the kubeconfig: the ca outputs follow, and the hooks run as for a new certificate. */
  private async onTrustChanged(slot: Slot): Promise<void> {
    const changed = await this.syncOutputs(slot);
    this.hooks.trigger(slot.cfg.hooks, {
      identity: slot.cfg.name, certFile: slot.state?.file ?? slot.agent.store.currentPath, kubeconfig: slot.cfg.kubeconfig,
      changed: [slot.cfg.kubeconfig, ...changed],
    });
  }

  private async onValid(slot: Slot, state: CredentialState): Promise<void> {
    slot.state = state;
    delete slot.lastError;
    this.metrics.certificate(slot.cfg.name, state.notBefore, state.notAfter, state.deadline);
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

  /** 429s are counted; the retry (after Retry-After) is the answer. */
  private onResponse(identity: string, status: number): void {
    if (status !== 429) return;
    // The agent logs the 429 itself (debug level), with the wait it chose.
    this.metrics.throttled.inc({ identity });
  }

  private onAttemptError(slot: Slot, err: unknown): void {
    slot.lastError = errorMessage(err);
    this.metrics.rotationErrors.inc({ identity: slot.cfg.name, reason: errorReason(err) });
    this.saveState(slot);
    void this.opts.notifier.status(this.statusLine());
  }

  /** Bring the extra outputs in line with the current certificate; returns what was written. */
  private async syncOutputs(slot: Slot): Promise<string[]> {
    const written = await syncOutputs(slot.outputs, slot.agent.store, slot.cfg.kubeconfig, `identity ${slot.cfg.name}`);
    if (written.length > 0) this.log.info('wrote outputs', { identity: slot.cfg.name, files: written.join(',') });
    return written;
  }

  /** Outputs restored, the config reloaded, bootstrap inputs noticed, as their files change. */
  private async startWatching(): Promise<void> {
    await this.watcher?.close();
    const outputs = new Map(this.slots.flatMap((s) => s.outputs.map((o) => [o.path, s] as const)));
    const inputs = this.slots.flatMap((s) => [s.cfg.bootstrapKubeconfig, s.cfg.bootstrapTokenFile].filter((f): f is string => f !== undefined));
    this.watcher = await watchFiles({ outputs: [...outputs.keys()], inputs, ...(this.config.file ? { config: this.config.file } : {}) }, {
      output: (file, event) => {
        const slot = outputs.get(file);
        if (!slot?.state) return;
        void this.syncOutputs(slot).then((written) => {
          if (written.includes(file)) this.log.warn('restored an output that was changed or removed', { identity: slot.cfg.name, file, event });
        }).catch((err: unknown) => this.log.error('could not restore an output', { file, error: errorMessage(err) }));
      },
      config: (file) => {
        this.log.info('the config file changed; reloading', { file });
        void this.reload();
      },
      input: (file, event) => this.log.info('bootstrap credentials changed; they are used from the next attempt', { file, event }),
    }, this.log);
  }

  private isReady(): boolean {
    return this.slots.length > 0 && this.slots.every((s) => s.state && s.state.notAfter.getTime() > Date.now());
  }

  private statusLine(): string {
    return statusLine(this.slots.map((s) => ({ name: s.cfg.name, ...(s.state ? { state: s.state } : {}), ...(s.lastError ? { lastError: s.lastError } : {}) })), this.hooks.failing());
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
    const notes = [slot.agent.trust.note, slot.agent.credentialNote].filter((n): n is string => n !== undefined);
    if (notes.length > 0) st.notes = notes;
    await writeStateFile(slot.cfg, st, this.log);
  }

  private async shutdown(): Promise<ExitCodeValue> {
    this.stopping = true;
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
