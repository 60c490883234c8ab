// Waiting for a CSR to be approved and issued: watch it by name from a known resourceVersion,
// re-watch when the server ends the stream, re-list after 410 Gone or a broken connection.
// No polling: between events we only block on the watch.
import type { ApiClient } from './api.js';
import type { CsrObject } from './csrtypes.js';
import { ApiError, ApprovalTimeoutError, CsrGoneError, CsrRejectedError } from '../base/errors.js';
import { listWatch } from './listwatch.js';
import { approveHint } from './vocabulary.js';
import { retryDelayMs } from '../base/time.js';
import type { Logger } from '../base/log.js';

export interface WaitOptions {
  signal: AbortSignal;
  timeoutMs: number;
  log: Logger;
  /** How often to repeat the "still pending" message (default 60 s). */
  pendingLogIntervalMs?: number;
  /** Server-side watch timeout; the server closes the stream after it (default 300 s). */
  watchTimeoutSeconds?: number;
}

type Phase = 'pending' | 'approved';

/** Returns the issued certificate chain (PEM) or throws why it never will be. */
export async function waitForCertificate(api: ApiClient, initial: CsrObject, opts: WaitOptions): Promise<string> {
  const name = initial.metadata.name ?? '';
  const uid = initial.metadata.uid;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.signal, timeout]);
  let phase: Phase = 'pending';
  const sayPhase = (): void => {
    if (phase === 'pending') {
      opts.log.info('waiting for the certificate signing request to be approved', {
        csr: name, signer: initial.spec.signerName, approve: approveHint(name),
      });
    } else {
      opts.log.info('certificate signing request approved; waiting for the signer to issue the certificate', {
        csr: name, signer: initial.spec.signerName,
      });
    }
  };
  const settle = (obj: CsrObject): string | undefined => {
    if (uid && obj.metadata.uid && obj.metadata.uid !== uid) {
      throw new CsrGoneError(name, 'was replaced by another object of the same name');
    }
    const result = certificateOf(obj);
    if (result === undefined && isApproved(obj) && phase === 'pending') {
      phase = 'approved';
      sayPhase();
    }
    return result;
  };

  const first = settle(initial);
  if (first !== undefined) return first;
  sayPhase();
  const ticker = setInterval(sayPhase, opts.pendingLogIntervalMs ?? 60_000);
  try {
    const source = {
      list: (sig: AbortSignal) => api.listCsrByName(name, sig),
      watch: (rv: string, sig: AbortSignal) => api.watchCsr(name, rv, sig, opts.watchTimeoutSeconds),
    };
    const chain = await listWatch(source, {
      object: settle,
      deleted: () => {
        throw new CsrGoneError(name, 'was deleted');
      },
      listed: (list) => {
        if (list.items.length === 0) throw new CsrGoneError(name, 'was deleted');
      },
      ended: (resourceVersion) => opts.log.debug(3, 'watch ended; watching again', { csr: name, resourceVersion }),
      gone: () => opts.log.debug(2, 'watch resourceVersion expired (410 Gone); listing again', { csr: name }),
      failed: (err, failures) => {
        if (!(err instanceof ApiError)) throw err;
        if (err.status === 410) {
          opts.log.debug(2, 'watch resourceVersion expired (410 Gone); listing again', { csr: name });
          return 0;
        }
        if (!err.transient) throw err;
        const delay = retryDelayMs(failures, Math.random, err.retryAfterMs);
        // Said once; while the server stays away, each retry is detail (an outage is told by the agent).
        const fields = { csr: name, error: err.message, retryInMs: Math.round(delay) };
        if (failures === 1) opts.log.warn('lost the watch on the certificate signing request; retrying', fields);
        else opts.log.debug(1, 'the watch on the certificate signing request is still lost; retrying', fields);
        return delay;
      },
    }, { signal, from: initial.metadata.resourceVersion ?? '' });
    if (chain !== undefined) return chain;
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    clearInterval(ticker);
  }
  if (opts.signal.aborted) throw opts.signal.reason ?? new Error('aborted');
  throw new ApprovalTimeoutError(
    `certificate signing request ${name} was not ${phase === 'pending' ? 'approved' : 'issued'} within ${Math.round(opts.timeoutMs / 1000)} s` +
      (phase === 'pending'
        ? `; approve it with: ${approveHint(name)}`
        : `; is kube-controller-manager running with the csrsigning controller for ${initial.spec.signerName}?`),
  );
}

function isApproved(obj: CsrObject): boolean {
  return (obj.status?.conditions ?? []).some((c) => c.type === 'Approved');
}

/** Like client-go: Denied/Failed end the wait whatever their status; Approved + certificate wins. */
export function certificateOf(obj: CsrObject): string | undefined {
  const name = obj.metadata.name ?? '';
  for (const c of obj.status?.conditions ?? []) {
    if (c.type === 'Denied' || c.type === 'Failed') {
      throw new CsrRejectedError(name, c.type, c.reason ?? '', c.message ?? '');
    }
  }
  const cert = obj.status?.certificate;
  if (isApproved(obj) && cert) return Buffer.from(cert, 'base64').toString('utf8');
  return undefined;
}
