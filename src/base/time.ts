// Durations and waiting: parsing what a user wrote, the retry schedule, sleeping until a time.
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from './errors.js';

export type Random = () => number;

/**
 * The one backoff: base × 2^(attempt - 1), stretched by up to `jitter` (a fraction), never more
 * than `capMs`. `attempt` counts failures so far, from 1.
 */
export function backoffMs(attempt: number, o: { baseMs: number; capMs: number; jitter?: number; rand?: Random }): number {
  const stretch = 1 + (o.jitter ?? 0) * (o.rand ?? Math.random)();
  return Math.min(o.capMs, o.baseMs * 2 ** Math.min(attempt - 1, 30) * stretch);
}

/** The bound of the retry delays: kubelet's 32 s. */
export const RETRY_CAP_MS = 32_000;
/** The longest Retry-After honoured, so that a broken proxy cannot park a node for a day. */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * The retry delay after `attempt` failures (from 1), with full jitter: uniform in
 * [0, min(32 s, 2 s × 2^attempt)). Its mean is kubelet's 2, 4, 8, 16 s for the first four
 * retries, then 16 s, never more than kubelet's 32 s cap. A fleet that failed together (an
 * outage) thus spreads its next tries over the whole interval instead of retrying in lockstep.
 * A server's Retry-After (429, 503) is waited out first: delay = Retry-After + the same jitter.
 */
export function retryDelayMs(attempt: number, rand: Random = Math.random, retryAfterMs = 0): number {
  const bound = Math.min(RETRY_CAP_MS, 2000 * 2 ** Math.min(Math.max(attempt, 1), 30));
  return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) + rand() * bound;
}

/** Node fires a setTimeout longer than 2^31-1 ms at once; and timers do not count suspend time. */
export const MAX_TICK_MS = 60_000;

/**
 * Sleep until a wall-clock time. Never arms one timer for longer than a minute and re-reads
 * the clock after each, so a suspended machine or a clock jump cannot make us late by more
 * than a minute. Resolves true when the time came, false when `wake` or `signal` cut it short.
 */
export async function sleepUntil(
  when: Date,
  opts: { signal?: AbortSignal; wake?: AbortSignal; now?: () => number; tickMs?: number } = {},
): Promise<boolean> {
  const now = opts.now ?? Date.now;
  const tick = opts.tickMs ?? MAX_TICK_MS;
  const signals = [opts.signal, opts.wake].filter((s): s is AbortSignal => s !== undefined);
  const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  for (;;) {
    const remaining = when.getTime() - now();
    if (remaining <= 0) return true;
    if (signal?.aborted) return false;
    try {
      await sleep(Math.min(remaining, tick), undefined, signal ? { signal } : {});
    } catch {
      return false;
    }
  }
}

/** The longest timer Node arms (2^31-1 ms, 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Parse a duration: "15m", "90s", "1h30m", "500ms", or a bare number of seconds. At most `maxMs`
 * (by default what a timer can wait for), so that every duration accepted works as given.
 */
export function parseDuration(value: unknown, where: string, maxMs = MAX_TIMER_MS): number {
  const ms = parseAnyDuration(value, where);
  if (ms > maxMs) throw new ConfigError(`${where} ${JSON.stringify(value)} is too long: at most ${formatDuration(maxMs)}`);
  return ms;
}

/** "596h31m", "15m", "90s": whole units, the largest first, to the second. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts: Array<[number, string]> = [[Math.floor(s / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm'], [s % 60, 's']];
  return parts.filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join('') || `${ms}ms`;
}

function parseAnyDuration(value: unknown, where: string): number {
  if (typeof value === 'number' && value > 0 && Number.isFinite(value)) return value * 1000;
  if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) && Number(value) > 0) return Number(value) * 1000;
  let total = 0;
  let consumed = '';
  if (typeof value === 'string') {
    for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
      total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
      consumed += m[0];
    }
  }
  if (typeof value !== 'string' || consumed !== value || !(total > 0) || !Number.isFinite(total)) {
    throw new ConfigError(`${where} ${JSON.stringify(value)} is not a duration like 15m, 90s or 1h`);
  }
  return total;
}
