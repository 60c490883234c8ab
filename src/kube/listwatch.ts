// The one list-then-watch loop (client-go's reflector, reduced to what tlsboot needs), for the
// agent's wait on one CSR and the approver's watch on all of them. Watch from a resourceVersion;
// when the server ends the stream, watch again from the last one seen; after 410 Gone or a
// broken stream, list again and go on from the list's resourceVersion.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from '../base/errors.js';
import type { CsrList, CsrObject, WatchEvent } from './csrtypes.js';

export interface ListWatchSource {
  list(signal: AbortSignal): Promise<CsrList>;
  watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent>;
}

export interface ListWatchHandler<T> {
  /** Each object listed, added or modified; a value other than undefined ends the loop with it. */
  object(obj: CsrObject): Promise<T | undefined> | T | undefined;
  /** A DELETED event; as for object(). */
  deleted(obj: CsrObject): Promise<T | undefined> | T | undefined;
  /** After each list and its objects were handled, with what it returned. */
  listed?(list: CsrList): Promise<void> | void;
  /** After a failed list or watch: throw to end the loop, or return how long to wait before listing again. */
  failed(err: unknown, failures: number): number;
  /** The server ended a stream normally (its timeoutSeconds); watching again. */
  ended?(resourceVersion: string): void;
  /** The resourceVersion expired (410 Gone, after compaction); listing again. */
  gone?(): void;
}

/**
 * Run until the handler returns a value (resolves with it) or throws, or `signal` aborts
 * (resolves undefined). With a `from` resourceVersion, the first step is a watch; otherwise a
 * list. `relist` aborting makes it list again at once (the approver's new policy).
 */
export async function listWatch<T>(
  source: ListWatchSource, handler: ListWatchHandler<T>, opts: { signal: AbortSignal; from?: string; relist?: () => AbortSignal },
): Promise<T | undefined> {
  let rv = opts.from ?? '';
  let relist = !opts.from;
  // Reset by every event: a stream that delivers and then breaks is not a failing server.
  const count = { failures: 0 };
  while (!opts.signal.aborted) {
    const again = opts.relist?.();
    const signal = again ? AbortSignal.any([opts.signal, again]) : opts.signal;
    try {
      if (relist) {
        const list = await source.list(opts.signal);
        for (const obj of list.items) {
          const done = await handler.object(obj);
          if (done !== undefined) return done;
        }
        await handler.listed?.(list);
        rv = list.resourceVersion;
        relist = false;
        count.failures = 0;
      }
      const step = await follow(source, handler, rv, signal, count);
      if ('done' in step) return step.done;
      if (step.rv === undefined) relist = true;
      else handler.ended?.((rv = step.rv));
      if (again?.aborted) relist = true;
    } catch (err) {
      if (opts.signal.aborted) break;
      relist = true;
      if (again?.aborted) continue;
      const delay = handler.failed(err, ++count.failures);
      await sleep(delay, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  }
  return undefined;
}

/** One watch stream: the handler's value, or where to go on from (undefined: list again). */
async function follow<T>(
  source: ListWatchSource, handler: ListWatchHandler<T>, from: string, signal: AbortSignal, count: { failures: number },
): Promise<{ done: T } | { rv: string | undefined }> {
  let rv = from;
  for await (const ev of source.watch(rv, signal)) {
    count.failures = 0;
    if (ev.type === 'ERROR') {
      if (ev.object.code === 410) {
        handler.gone?.();
        return { rv: undefined };
      }
      throw new ApiError(`watch: ${ev.object.code ?? ''} ${ev.object.message ?? ev.object.reason ?? ''}`.trim(), ev.object.code ?? 0);
    }
    rv = ev.object.metadata.resourceVersion ?? rv;
    if (ev.type === 'BOOKMARK') continue;
    const done = ev.type === 'DELETED' ? await handler.deleted(ev.object) : await handler.object(ev.object);
    if (done !== undefined) return { done };
  }
  return { rv: signal.aborted ? undefined : rv };
}
