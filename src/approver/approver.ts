// `tlsboot approve`: a controller that lists and watches every CSR and applies the policy to
// the pending ones, through the approval subresource. Writes are conditional on the
// resourceVersion read, so several approvers (one per control-plane node) can run at once:
// the loser of a race gets 409, reads the CSR again and finds it decided.
import { type ApiClient } from '../kube/api.js';
import { withDecision, type CsrObject } from '../kube/csrtypes.js';
import { parseCsrPem, type ParsedCsr } from '../pki/csr.js';
import { ApiError, errorMessage, errorReason } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import type { ApproverMetrics } from './metrics.js';
import { decide, needsNodes, nodeToLookUp, policySigners, type Decision, type Policy, type PolicyFacts } from './policy.js';
import { retryDelayMs } from '../base/time.js';
import { listWatch } from '../kube/listwatch.js';

export interface ApproverOptions {
  log: Logger;
  metrics?: ApproverMetrics;
  /** Decide and log, write nothing. */
  dryRun?: boolean;
  /** Server-side watch timeout (default 300 s); the watch is opened again after it. */
  watchTimeoutSeconds?: number;
  /** Called once, after the first list has been handled. */
  onSynced?: () => void;
}

export interface Tally {
  approved: number;
  denied: number;
  ignored: number;
  errors: number;
}

const CONFLICT_RETRIES = 3;
const WRITE_RETRY_MAX_MS = 60_000;

export class Approver {
  private policy: Policy;
  private readonly api: ApiClient;
  private readonly opts: ApproverOptions;
  /** uid -> decision already logged and counted, so a CSR's repeated events say it once. */
  private readonly told = new Map<string, string>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private relist = new AbortController();
  private synced = false;
  readonly tally: Tally = { approved: 0, denied: 0, ignored: 0, errors: 0 };

  constructor(api: ApiClient, policy: Policy, opts: ApproverOptions) {
    this.api = api;
    this.policy = policy;
    this.opts = opts;
  }

  get ready(): boolean {
    return this.synced;
  }

  /** A new policy: every pending CSR is looked at again under it. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.told.clear();
    this.relist.abort();
  }

  /** Handle the CSRs pending now, then return (for cron jobs and trying a policy out). */
  async once(signal: AbortSignal): Promise<Tally> {
    try {
      const list = await this.api.listCsrs(signal);
      for (const csr of list.items) await this.handle(csr, signal);
      return this.tally;
    } finally {
      this.stopRetries();
    }
  }

  /** List, then watch from the list's resourceVersion, until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const source = {
      list: (sig: AbortSignal) => this.api.listCsrs(sig),
      watch: (rv: string, sig: AbortSignal) => this.api.watchCsrs(rv, sig, this.opts.watchTimeoutSeconds),
    };
    try {
      await listWatch<never>(source, {
        object: async (csr) => {
          await this.handle(csr, signal);
          this.heartbeat();
          return undefined;
        },
        deleted: (csr) => {
          this.forget(csr);
          this.heartbeat();
          return undefined;
        },
        listed: () => {
          this.markSynced();
          this.heartbeat();
        },
        // The server ends a healthy watch every watchTimeoutSeconds: a beat while nothing happens.
        ended: () => this.heartbeat(),
        gone: () => this.opts.log.debug(2, 'watch resourceVersion expired (410 Gone); listing again'),
        failed: (err, failures) => {
          this.error('watching CSRs failed; listing again', err);
          return retryDelayMs(failures, Math.random, err instanceof ApiError ? err.retryAfterMs : 0);
        },
      }, {
        signal,
        // A new policy (setPolicy) aborts the current one: list again at once.
        relist: () => {
          if (this.relist.signal.aborted) this.relist = new AbortController();
          return this.relist.signal;
        },
      });
    } finally {
      this.stopRetries();
    }
  }

  private stopRetries(): void {
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }

  private heartbeat(): void {
    this.opts.metrics?.lastSync.setToCurrentTime();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.opts.log.info('watching certificate signing requests', { signers: policySigners(this.policy).join(','), rules: this.policy.rules.length, dryRun: this.opts.dryRun || undefined });
    this.opts.onSynced?.();
  }

  private forget(csr: CsrObject): void {
    const uid = csr.metadata.uid ?? '';
    this.told.delete(uid);
    const t = this.retries.get(uid);
    if (t) clearTimeout(t);
    this.retries.delete(uid);
  }

  /** Decide one CSR and write the decision; never throws (errors are logged, counted, retried). */
  private async handle(csr: CsrObject, signal: AbortSignal, attempt = 0): Promise<void> {
    if (!isPending(csr)) {
      this.forget(csr);
      return;
    }
    let facts: PolicyFacts;
    try {
      facts = await this.factsFor(csr, signal);
    } catch (err) {
      if (signal.aborted) return;
      this.error('could not read the requesting Node; trying again', err, { csr: csr.metadata.name ?? '' });
      this.scheduleRetry(csr, signal, attempt);
      return;
    }
    const decision = decide(this.policy, csr, await parseRequest(csr), facts);
    const key = `${decision.action}:${decision.rule}:${decision.message}`;
    const uid = csr.metadata.uid ?? '';
    if (this.told.get(uid) === key) return;
    if (decision.action === 'ignore' || this.opts.dryRun) {
      this.told.set(uid, key);
      this.report(csr, decision);
      return;
    }
    try {
      const approve = decision.action === 'approve';
      await this.api.updateApproval(withDecision(csr, approve ? 'Approved' : 'Denied', approve ? 'TlsbootPolicy' : 'TlsbootPolicyViolation', decision.message), signal);
      this.told.set(uid, key);
      this.report(csr, decision);
    } catch (err) {
      if (signal.aborted) return;
      await this.writeFailed(csr, err, signal, attempt);
    }
  }

  /** What the in-scope rules need looked up: the requesting Node's addresses (nodeAddresses). */
  private async factsFor(csr: CsrObject, signal: AbortSignal): Promise<PolicyFacts> {
    const node = nodeToLookUp(this.policy, csr);
    if (node === undefined) return {};
    return { nodeAddresses: (await this.api.nodeAddresses(node, signal)) ?? null };
  }

  private async writeFailed(csr: CsrObject, err: unknown, signal: AbortSignal, attempt: number): Promise<void> {
    const name = csr.metadata.name ?? '';
    if (err instanceof ApiError && err.status === 404) return;
    if (err instanceof ApiError && err.status === 409 && attempt < CONFLICT_RETRIES) {
      // Someone else wrote it first (another approver, kubectl, the controller-manager).
      this.opts.log.debug(1, 'CSR changed while deciding; reading it again', { csr: name });
      const fresh = await this.api.getCsr(name, signal).catch(() => undefined);
      if (fresh) await this.handle(fresh, signal, attempt + 1);
      return;
    }
    this.error('could not write the decision; trying again', err, { csr: name });
    this.scheduleRetry(csr, signal, attempt);
  }

  private scheduleRetry(csr: CsrObject, signal: AbortSignal, attempt: number): void {
    const uid = csr.metadata.uid ?? '';
    if (this.retries.has(uid)) return;
    const delay = Math.min(WRITE_RETRY_MAX_MS, retryDelayMs(attempt + 1));
    const timer = setTimeout(() => {
      this.retries.delete(uid);
      void this.api.getCsr(csr.metadata.name ?? '', signal)
        .then((fresh) => this.handle(fresh, signal, attempt + 1))
        .catch((err: unknown) => {
          if (!signal.aborted && !(err instanceof ApiError && err.status === 404)) this.scheduleRetry(csr, signal, attempt + 1);
        });
    }, delay);
    timer.unref();
    this.retries.set(uid, timer);
  }

  private report(csr: CsrObject, d: Decision): void {
    const fields = { csr: csr.metadata.name, signer: csr.spec.signerName, requester: csr.spec.username, rule: d.rule || undefined };
    const would = this.opts.dryRun && d.action !== 'ignore' ? 'dry run: would have ' : '';
    if (d.action === 'approve') {
      this.tally.approved++;
      this.opts.log.info(`${would}approved`, fields);
    } else if (d.action === 'deny') {
      this.tally.denied++;
      this.opts.log.warn(`${would}denied`, { ...fields, message: d.message });
    } else {
      this.tally.ignored++;
      this.opts.log.info('left alone', { ...fields, why: d.message });
    }
    const label = d.action === 'approve' ? 'approved' : d.action === 'deny' ? 'denied' : 'ignored';
    this.opts.metrics?.decisions.inc({ decision: this.opts.dryRun && d.action !== 'ignore' ? `would_${label}` : label, rule: d.rule, signer: csr.spec.signerName });
  }

  private error(msg: string, err: unknown, fields: Record<string, string> = {}): void {
    this.tally.errors++;
    this.opts.metrics?.errors.inc({ reason: errorReason(err) });
    this.opts.log.warn(msg, { ...fields, error: errorMessage(err) });
  }
}

/** Not yet decided by anyone, and not issued. */
export function isPending(csr: CsrObject): boolean {
  const decided = (csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed');
  return !decided && !csr.status?.certificate;
}

async function parseRequest(csr: CsrObject): Promise<ParsedCsr | undefined> {
  try {
    return await parseCsrPem(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** What the approver's identity lacks to do its job, as "verb resource" lines; empty when all is there. */
export async function missingPermissions(api: ApiClient, policy: Policy): Promise<string[]> {
  const group = 'certificates.k8s.io';
  const wants = [
    { group, resource: 'certificatesigningrequests', verb: 'list' },
    { group, resource: 'certificatesigningrequests', verb: 'watch' },
    { group, resource: 'certificatesigningrequests', verb: 'update', subresource: 'approval' },
    ...policySigners(policy).map((name) => ({ group, resource: 'signers', verb: 'approve', name })),
    ...(needsNodes(policy) ? [{ group: '', resource: 'nodes', verb: 'get' }] : []),
  ];
  const missing: string[] = [];
  for (const w of wants) {
    if (!(await api.canI(w))) missing.push(`${w.verb} ${w.resource}${'subresource' in w ? `/${w.subresource}` : ''}${'name' in w ? ` ${w.name}` : ''}`);
  }
  return missing;
}
