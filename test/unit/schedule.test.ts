import t from 'tap';
import { retryDelayMs, sleepUntil } from '../../src/base/time.js';
import { rotationDeadline, rotationWindow } from '../../src/node/deadline.js';

t.test('deadline is 70-90 % of the lifetime from NotBefore', async (t) => {
  const nb = new Date('2026-01-01T00:00:00Z');
  const na = new Date('2026-01-11T00:00:00Z');
  t.equal(rotationDeadline(nb, na, () => 0).toISOString(), '2026-01-08T00:00:00.000Z');
  t.equal(rotationDeadline(nb, na, () => 0.5).toISOString(), '2026-01-09T00:00:00.000Z');
  t.equal(rotationDeadline(nb, na, () => 0.999999).getTime() < new Date('2026-01-10T00:00:00Z').getTime(), true);
  t.equal(rotationDeadline(nb, na, () => 0.3, 0.5).toISOString(), '2026-01-06T00:00:00.000Z', 'fixed fraction');
  const w = rotationWindow(nb, na);
  t.same([w.from.toISOString(), w.to.toISOString()], ['2026-01-08T00:00:00.000Z', '2026-01-10T00:00:00.000Z']);
});

t.test('retry delays: full jitter below min(32 s, 2 s x 2^attempt); the mean is kubelet\'s 2, 4, 8, 16 s, then 16 s', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 50].map((a) => retryDelayMs(a, () => 0)), [0, 0, 0, 0, 0, 0, 0], 'from zero: a fleet spreads over the whole interval');
  t.same([1, 2, 3, 4, 5, 6, 50].map((a) => retryDelayMs(a, () => 0.5)), [2000, 4000, 8000, 16000, 16000, 16000, 16000], 'the mean');
  t.same([1, 2, 3, 4, 5, 50].map((a) => retryDelayMs(a, () => 1)), [4000, 8000, 16000, 32000, 32000, 32000], 'the bound, capped at 32 s');
  // Many identities failing at the same moment: their next tries cover the interval evenly.
  const draws = Array.from({ length: 10_000 }, () => retryDelayMs(6));
  const buckets = new Array<number>(8).fill(0);
  for (const d of draws) buckets[Math.floor(d / 4000)]!++;
  t.ok(draws.every((d) => d >= 0 && d < 32_000), 'within [0, 32 s)');
  t.ok(buckets.every((n) => n > 1000 && n < 1500), `even over the 32 s: ${buckets.join(' ')}`);
  t.ok(Math.abs(draws.reduce((a, b) => a + b, 0) / draws.length - 16_000) < 800, 'mean 16 s');
});

t.test('Retry-After is waited out first, then the same jitter; an absurd one is bounded', async (t) => {
  t.equal(retryDelayMs(1, () => 0, 5000), 5000, 'at least Retry-After');
  t.equal(retryDelayMs(1, () => 0.5, 5000), 7000, 'plus jitter');
  t.equal(retryDelayMs(3, () => 1, 1000), 17_000);
  t.equal(retryDelayMs(1, () => 0, 86_400_000), 600_000, 'ten minutes at most');
});

t.test('sleepUntil re-reads the clock every tick: a clock jump is noticed', async (t) => {
  let now = 0;
  const start = Date.now();
  setTimeout(() => (now = 10 * 86400_000), 50); // "resume from suspend" ten days later
  const due = await sleepUntil(new Date(5 * 86400_000), { now: () => now, tickMs: 20 });
  t.equal(due, true);
  t.ok(Date.now() - start < 2000, 'woke within a few ticks');
});

t.test('sleepUntil never arms a timer beyond Node\'s limit', async (t) => {
  const ac = new AbortController();
  const p = sleepUntil(new Date(Date.now() + 60 * 86400_000), { signal: ac.signal });
  setTimeout(() => ac.abort(), 30);
  t.equal(await p, false, 'still sleeping after 30 ms (a 60-day timer would have fired at once), then aborted');
});

t.test('sleepUntil can be woken early', async (t) => {
  const wake = new AbortController();
  setTimeout(() => wake.abort(), 20);
  t.equal(await sleepUntil(new Date(Date.now() + 3600_000), { wake: wake.signal }), false);
  t.equal(await sleepUntil(new Date(Date.now() - 1)), true, 'past deadline returns at once');
});
