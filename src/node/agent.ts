// The agent loop: make sure a valid certificate is on disk, retrying attempts (node/attempt) on
// kubelet's schedule, and keep it valid: rotate at each deadline, follow the cluster's CAs
// (node/trust), remove the bootstrap token once it has served. Modelled on kubelet's two paths:
// bootstrap = pkg/kubelet/certificate/bootstrap (persisted key, deterministic CSR name),
// rotation = client-go util/certificate (same schedule), but with bootstrap's persisted key and
// deterministic name, so a rotation that is never approved leaves one CSR, not one per attempt.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, ApprovalTimeoutError, BootstrapTokenRejectedError, ConfigError, CsrRejectedError, RetriesExhaustedError, TlsbootError, errorMessage } from '../base/errors.js';
import { silentLogger, type Logger } from '../base/log.js';
import { formatDuration, retryDelayMs, sleepUntil, type Random } from '../base/time.js';
import { ClusterInfoAbsentError, ClusterInfoError } from '../kube/clusterinfo.js';
import type { RequestLimiter } from '../kube/limiter.js';
import { normalIp, subjectAltNames, type CertInfo } from '../pki/certs.js';
import { sameSubject } from '../pki/csr.js';
import { Attempts } from './attempt.js';
import { NO_BOOTSTRAP_CREDENTIAL, readBootstrap, readCurrent, readServing, removeBootstrapToken, type Held } from './credentials.js';
import { rotationDeadline } from './deadline.js';
import { FailureLog } from './failures.js';
import { DEFAULT_KEEP, type IdentitySettings } from './identity.js';
import { CertStore } from './store.js';
import { DEFAULT_CA_REFRESH_MS, DEFAULT_REISSUE_JITTER_MS, TrustKeeper } from './trust.js';

/** How long --once retries failures by default before it exits 1. */
export const DEFAULT_RETRY_TIMEOUT_MS = 5 * 60_000;

export interface AgentOptions extends IdentitySettings {
  /** --once: give up on errors that will not fix themselves instead of retrying for ever. */
  once?: boolean;
  /** With `once`: stop retrying after failing for this long (--retry-timeout; default 5 min). */
  retryTimeoutMs?: number;
  log?: Logger;
  rand?: Random;
  now?: () => Date;
  /** Called each time a new certificate is in place (for outputs and hooks). */
  onCertificate?: (state: CredentialState) => void | Promise<void>;
  /** Called whenever run() has made sure a valid certificate is on disk (for readiness). */
  onValid?: (state: CredentialState) => void | Promise<void>;
  /** Called for each failed attempt, before the retry. */
  onAttemptError?: (err: unknown) => void;
  watchTimeoutSeconds?: number;
  /** Shared by the identities of one daemon: requests in flight and per second, per API server. */
  limiter?: RequestLimiter;
  /** Told the status of every answer from the API server (0: none). */
  onResponse?: (status: number) => void;
  /** Shared by the identities of one daemon: how failures are told (one of its own otherwise). */
  failures?: FailureLog;
  /** This identity's name in that log (the daemon's identity name). */
  name?: string;
  /** The cluster's CAs changed and the kubeconfig now trusts them (for outputs and hooks). */
  onTrustChanged?: () => Promise<void>;
  /** After each read of the cluster's CAs: why the certificate should be re-issued, if it should. */
  onTrustChecked?: (note: string | undefined) => void;
}

export interface CredentialState {
  file: string;
  subject: CertInfo['subject'];
  notBefore: Date;
  notAfter: Date;
  deadline: Date;
  /** The CSR that produced it, when it was issued during this call. */
  csrName?: string;
  /** Seconds from the CSR's creation to the issued certificate, when issued during this call. */
  issuanceSeconds?: number;
}

export class Agent {
  readonly store: CertStore;
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly rand: Random;
  private readonly now: () => Date;
  private memo: { serial: string; deadline: Date } | undefined;
  private started = false;
  /** What inspect() last warned about: ensure() and the attempt both inspect, say it once. */
  private inspectWarning: string | undefined;
  private readonly failures: FailureLog;
  private readonly attempts: Attempts;
  readonly trust: TrustKeeper;
  /** Set once removeBootstrapCredential has removed the token (for status). */
  credentialNote: string | undefined;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.failures = opts.failures ?? new FailureLog(this.log);
    this.rand = opts.rand ?? Math.random;
    this.now = opts.now ?? (() => new Date());
    this.store = new CertStore(opts.certDir, opts.identity.filePrefix, { keep: opts.keep ?? DEFAULT_KEEP, log: this.log });
    this.trust = new TrustKeeper({
      kubeconfig: opts.kubeconfig, pins: opts.caCertHashes ?? [], log: this.log,
      bootstrap: async () => (await readBootstrap(this.opts)).config,
      write: (cluster) => this.store.writeKubeconfig(opts.kubeconfig, cluster),
      ...(opts.onTrustChanged ? { onChanged: opts.onTrustChanged } : {}),
      ...(opts.onTrustChecked ? { onChecked: opts.onTrustChecked } : {}),
    });
    this.attempts = new Attempts({
      opts, store: this.store, trust: this.trust, log: this.log, now: this.now, inspect: () => this.inspect(),
      issued: (leaf, file, csrName) => this.stateOf(leaf, file, this.deadlineOf(leaf), csrName),
    });
  }

  /**
   * Make sure a valid credential is on disk. With `force` rotate even if not yet due.
   * Retries per kubelet's schedule; returns once a valid credential is in place.
   */
  async ensure(signal: AbortSignal, force = false): Promise<CredentialState> {
    const state = await this.ensureValid(signal, force);
    if (this.opts.removeBootstrapCredential && !this.opts.serving) await this.retireBootstrap(signal);
    return state;
  }

  private async ensureValid(signal: AbortSignal, force: boolean): Promise<CredentialState> {
    await this.store.recover(this.now());
    if (!this.started) {
      this.started = true;
      await this.store.removeLeftovers(this.opts.kubeconfig);
    }
    const current = await this.inspect();
    if (current && !force) {
      const deadline = this.deadlineOf(current.leaf);
      if (deadline.getTime() > this.now().getTime() && this.satisfiesIdentity(current.leaf, current.cert.certPem)) {
        this.log.debug(1, `current ${this.kind} certificate is valid`, { notAfter: current.leaf.notAfter.toISOString() });
        return this.stateOf(current.leaf, current.config?.clientCertificate?.certPath ?? this.store.currentPath, deadline);
      }
    }
    return this.retrying(signal, () => this.attempts.run(signal));
  }

  /** Run until the signal aborts: keep a valid certificate, rotate at each deadline. */
  async run(signal: AbortSignal, wake?: () => AbortSignal): Promise<void> {
    let force = false;
    let early = 0;
    while (!signal.aborted) {
      const state = await this.ensure(signal, force);
      await this.opts.onValid?.(state);
      let next = state.deadline;
      if (next.getTime() <= this.now().getTime()) {
        // The signer hands out certificates that are due at once; do not spin.
        early++;
        const delay = Math.max(1000, retryDelayMs(early, this.rand));
        next = new Date(this.now().getTime() + delay);
        this.log.warn('the new certificate is already due for rotation; is the signing duration very short or the clock off?', {
          notBefore: state.notBefore.toISOString(), notAfter: state.notAfter.toISOString(), retryInMs: Math.round(delay),
        });
      } else {
        early = 0;
      }
      // The trust is read at start and after every rotation, then every caRefreshInterval.
      next = await this.keepTrust(next, signal);
      this.log.info('next rotation scheduled', { at: next.toISOString(), notAfter: state.notAfter.toISOString() });
      const due = await this.sleepTracking(next, signal, wake);
      force = true;
      if (!due && !signal.aborted) this.log.info('rotating now on request');
    }
  }

  /**
   * removeBootstrapCredential: once the API server takes the certificate for who it names, the
   * bootstrap token goes (node/credentials), so that no secret outlives its use on the node.
   */
  private async retireBootstrap(signal: AbortSignal): Promise<void> {
    const current = await this.inspect();
    if (!current?.config) return;
    const api = this.attempts.client(current.config, { kind: 'certificate', ...current.cert });
    try {
      if ((await api.whoami(signal)).username !== current.leaf.subject.commonName) return;
    } catch (err) {
      this.log.debug(1, 'the certificate could not be verified against the server yet; the bootstrap token stays', { error: errorMessage(err) });
      return;
    } finally {
      await api.close();
    }
    const { removed, problem } = await removeBootstrapToken(this.opts);
    if (problem) this.warnOnce(problem, {});
    if (removed.length > 0) this.log.info('removed the bootstrap token: rotation depends on the current certificate from now on', { removed: removed.join(',') });
    this.credentialNote = problem ? undefined : NO_BOOTSTRAP_CREDENTIAL;
  }

  /** Whether this identity follows the cluster's CAs (a client identity, refresh not off). */
  private get tracksTrust(): boolean {
    return !this.opts.serving && this.opts.caRefreshIntervalMs !== 0;
  }

  /** Sleep until `next`, reading the cluster's CAs every caRefreshInterval; false when woken early. */
  private async sleepTracking(next: Date, signal: AbortSignal, wake?: () => AbortSignal): Promise<boolean> {
    const interval = this.opts.caRefreshIntervalMs ?? DEFAULT_CA_REFRESH_MS;
    for (;;) {
      const opts = { signal, ...(wake ? { wake: wake() } : {}), now: () => this.now().getTime() };
      // Jittered, so that a fleet started together does not read cluster-info together.
      const refreshAt = this.tracksTrust ? this.now().getTime() + interval * (0.75 + 0.5 * this.rand()) : Infinity;
      if (next.getTime() <= refreshAt) return sleepUntil(next, opts);
      if (!(await sleepUntil(new Date(refreshAt), opts))) return false;
      next = await this.keepTrust(next, signal);
    }
  }

  /**
   * Read the cluster's CAs (node/trust); when the current certificate's issuer is no longer
   * listed, bring the rotation forward to a random point within reissueJitter, once.
   */
  private async keepTrust(next: Date, signal: AbortSignal): Promise<Date> {
    if (!this.tracksTrust) return next;
    const current = await this.inspect();
    if (!current?.config) return next;
    const who = `${this.opts.name ?? this.store.currentPath} (cluster CAs)`;
    let stale: boolean;
    try {
      stale = await this.trust.refresh(current.config, current.cert.certPem, signal);
      this.failures.recovered(who, this.log);
    } catch (err) {
      // A cluster without cluster-info has no CA rotation to follow; doctor says so, once.
      if (err instanceof ClusterInfoAbsentError) this.log.debug(1, 'the CAs are not followed', { why: errorMessage(err) });
      else if (!signal.aborted) this.failures.failed(who, this.log, `could not read the cluster's CAs from cluster-info: ${errorMessage(err)}`, {});
      return next;
    }
    return this.trust.reissueAt(current.leaf, stale, next, { now: this.now(), rand: this.rand, jitterMs: this.opts.reissueJitterMs ?? DEFAULT_REISSUE_JITTER_MS });
  }

  private async retrying(signal: AbortSignal, attempt: () => Promise<CredentialState>): Promise<CredentialState> {
    // Under --once the retries are bounded: a provisioning script must get its answer.
    const giveUpAt = this.opts.once ? Date.now() + (this.opts.retryTimeoutMs ?? DEFAULT_RETRY_TIMEOUT_MS) : Infinity;
    const who = this.opts.name ?? this.store.currentPath;
    for (let failures = 1; ; failures++) {
      this.attempts.retrying = failures > 1;
      try {
        const state = await attempt();
        this.failures.recovered(who, this.log);
        return state;
      } catch (err) {
        if (signal.aborted) throw err;
        this.opts.onAttemptError?.(err);
        if (!this.retryable(err)) throw err;
        const left = giveUpAt - Date.now();
        if (left <= 0) throw new RetriesExhaustedError(`gave up after ${failures} attempts in ${formatDuration(this.opts.retryTimeoutMs ?? DEFAULT_RETRY_TIMEOUT_MS)} (--retry-timeout): ${errorMessage(err)}`);
        // The last try lands on the deadline rather than past it.
        const delay = Math.min(retryDelayMs(failures, this.rand, err instanceof ApiError ? err.retryAfterMs : 0), left);
        const detail = { attempt: failures, retryInMs: Math.round(delay) };
        // A 429 is the server pacing its clients, not a failure to report: counted, told at debug level.
        if (err instanceof ApiError && err.status === 429) this.log.debug(1, 'the API server asked us to slow down (429); waiting', { error: errorMessage(err), ...detail });
        else this.failures.failed(who, this.log, errorMessage(err), detail);
        await sleep(delay, undefined, { signal });
      }
    }
  }

  private retryable(err: unknown): boolean {
    // A rejected token may be replaced while we wait (kubelet retries 401s for ever too).
    if (err instanceof BootstrapTokenRejectedError) return !this.opts.once;
    // cluster-info forged, or unpublished: a man in the middle may go, an admin may publish it.
    if (err instanceof ClusterInfoError) return !this.opts.once;
    if (err instanceof ConfigError || err instanceof CsrRejectedError) return false;
    if (!this.opts.once) return true;
    // --once: wait out what may heal by itself (server down, CSR deleted), not what needs a human.
    if (err instanceof ApprovalTimeoutError) return false;
    if (err instanceof ApiError) return err.transient;
    return err instanceof TlsbootError;
  }

  /** "client", or "serving" for a certificate that cannot authenticate (the serving preset). */
  get kind(): 'client' | 'serving' {
    return this.opts.serving ? 'serving' : 'client';
  }

  /**
   * The unexpired certificate on disk, if any; a problem is said once. A client certificate is
   * the one the written kubeconfig points at; a serving one is <prefix>-current.pem.
   */
  private async inspect(): Promise<Held | undefined> {
    const { current, problem } = this.opts.serving ? await readServing(this.store.currentPath, this.now()) : await readCurrent(this.opts.kubeconfig, this.now());
    if (problem) this.warnOnce(problem.message, problem.fields);
    else this.inspectWarning = undefined;
    return current;
  }

  private warnOnce(msg: string, fields: Record<string, string>): void {
    const key = JSON.stringify([msg, fields]);
    if (key === this.inspectWarning) return;
    this.inspectWarning = key;
    this.log.warn(msg, fields);
  }

  /**
   * The certificate on disk is the one asked for: its subject, and its DNS and IP names (a serving
   * certificate's host addresses change, with DHCP say; the next one must name the new ones).
   */
  private satisfiesIdentity(leaf: CertInfo, certPem: string): boolean {
    const want = this.opts.identity.subject;
    if (!sameSubject(leaf.subject, want)) {
      this.log.info('the current certificate does not match the requested subject; rotating now', { has: leaf.subject.commonName, wants: want.commonName });
      return false;
    }
    const has = subjectAltNames(certPem);
    const id = this.opts.identity;
    const wants = { dnsNames: id.dnsNames.map((d) => d.toLowerCase()).sort(), ipAddresses: id.ipAddresses.map(normalIp).sort() };
    if (JSON.stringify(has) === JSON.stringify(wants)) return true;
    this.log.info('the current certificate does not name the requested DNS names and IP addresses; rotating now', {
      has: [...has.dnsNames, ...has.ipAddresses].join(','), wants: [...wants.dnsNames, ...wants.ipAddresses].join(','),
    });
    return false;
  }

  /** One random draw per certificate, as kubelet does, so restarts of the loop do not re-roll. */
  private deadlineOf(leaf: CertInfo): Date {
    if (this.memo?.serial !== leaf.serialNumber) {
      this.memo = { serial: leaf.serialNumber, deadline: rotationDeadline(leaf.notBefore, leaf.notAfter, this.rand, this.opts.rotationFraction) };
    }
    return this.memo.deadline;
  }

  private stateOf(leaf: CertInfo, file: string, deadline: Date, csrName?: string): CredentialState {
    const s: CredentialState = { file, subject: leaf.subject, notBefore: leaf.notBefore, notAfter: leaf.notAfter, deadline };
    if (csrName) s.csrName = csrName;
    return s;
  }
}
