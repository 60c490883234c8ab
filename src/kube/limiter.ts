// How many requests one process sends to one API server: at most `concurrency` in flight, and
// at most `qps` started per second. A daemon with many identities that all wake at once (a reboot
// after an outage) would otherwise send every create together and draw 429s from the server's
// priority and fairness queues (measured: 499 of 1,499 creates for 1,000 identities), and a queue
// alone would flush in a burst the moment the server answers again (measured: 208 requests in one
// second). Watches are long-running: they are paced when they start but never hold a slot.
import { setTimeout as sleep } from 'node:timers/promises';

/** The default number of requests in flight to one API server (`apiConcurrency`). */
export const DEFAULT_API_CONCURRENCY = 8;
/** The default number of requests started per second to one API server (`apiQps`), burst included. */
export const DEFAULT_API_QPS = 20;

interface Lane {
  active: number;
  waiting: Array<() => void>;
  /** When the next request may start if none has been saved up (GCRA's theoretical arrival time). */
  tat: number;
}

/** Bounds on the requests of one process per API server; those over a bound wait their turn, in order. */
export class RequestLimiter {
  readonly limit: number;
  readonly qps: number;
  private readonly lanes = new Map<string, Lane>();
  private readonly now: () => number;

  constructor(limit = DEFAULT_API_CONCURRENCY, qps = DEFAULT_API_QPS, now: () => number = Date.now) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the API concurrency must be a whole number >= 1, not ${limit}`);
    if (!Number.isInteger(qps) || qps < 1) throw new RangeError(`the API request rate must be a whole number >= 1, not ${qps}`);
    this.limit = limit;
    this.qps = qps;
    this.now = now;
  }

  /**
   * Wait until a request to `server` may start by the rate (a burst of up to `qps` at once, then
   * `qps` a second): the generic cell rate algorithm, which needs no timer between requests.
   */
  async pace(server: string, signal?: AbortSignal): Promise<void> {
    const lane = this.lane(server);
    const interval = 1000 / this.qps;
    const now = this.now();
    const tat = Math.max(now, lane.tat);
    lane.tat = tat + interval;
    const wait = tat - (this.qps - 1) * interval - now;
    if (wait > 0) await sleep(wait, undefined, signal ? { signal } : {});
  }

  /** Run `fn` once `server` has a free slot and the rate allows. A signal that aborts while waiting rejects. */
  async run<T>(server: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const lane = this.lane(server);
    if (lane.active >= this.limit) await this.wait(lane, signal);
    lane.active++;
    try {
      await this.pace(server, signal);
      return await fn();
    } finally {
      lane.active--;
      lane.waiting.shift()?.();
      if (lane.active === 0 && lane.waiting.length === 0 && lane.tat <= this.now()) this.lanes.delete(server);
    }
  }

  /** Requests in flight and waiting for `server` (what a test looks at). */
  load(server: string): { active: number; waiting: number } {
    const lane = this.lanes.get(server);
    return { active: lane?.active ?? 0, waiting: lane?.waiting.length ?? 0 };
  }

  private lane(server: string): Lane {
    let lane = this.lanes.get(server);
    if (!lane) this.lanes.set(server, (lane = { active: 0, waiting: [], tat: 0 }));
    return lane;
  }

  private wait(lane: Lane, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = (): void => {
        lane.waiting.splice(lane.waiting.indexOf(go), 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      const go = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      lane.waiting.push(go);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
