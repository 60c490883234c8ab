// How many requests one process has in flight to one API server. A daemon with many identities
// that all wake at once (a reboot after an outage) would otherwise send every create together and
// draw 429s from the server's priority and fairness queues (measured: 499 of 1,499 creates for
// 1,000 identities). Watches are long-running and never take a slot.

/** The default number of requests in flight to one API server (`apiConcurrency`). */
export const DEFAULT_API_CONCURRENCY = 8;

interface Lane {
  active: number;
  waiting: Array<() => void>;
}

/** At most `limit` requests at a time per API server; the others wait their turn, in order. */
export class RequestLimiter {
  readonly limit: number;
  private readonly lanes = new Map<string, Lane>();

  constructor(limit = DEFAULT_API_CONCURRENCY) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the API concurrency must be a whole number >= 1, not ${limit}`);
    this.limit = limit;
  }

  /** Run `fn` once `server` has a free slot. A signal that aborts while waiting rejects with its reason. */
  async run<T>(server: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const lane = this.lane(server);
    if (lane.active >= this.limit) await this.wait(lane, signal);
    lane.active++;
    try {
      return await fn();
    } finally {
      lane.active--;
      lane.waiting.shift()?.();
      if (lane.active === 0 && lane.waiting.length === 0) this.lanes.delete(server);
    }
  }

  /** Requests in flight and waiting, per server (for tests and metrics). */
  load(server: string): { active: number; waiting: number } {
    const lane = this.lanes.get(server);
    return { active: lane?.active ?? 0, waiting: lane?.waiting.length ?? 0 };
  }

  private lane(server: string): Lane {
    let lane = this.lanes.get(server);
    if (!lane) this.lanes.set(server, (lane = { active: 0, waiting: [] }));
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
