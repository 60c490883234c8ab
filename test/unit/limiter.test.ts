// The per-server bound on requests in flight.
import t from 'tap';
import { RequestLimiter } from '../../src/kube/limiter.js';

const later = (): { promise: Promise<void>; resolve: () => void } => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

t.test('at most `limit` at a time per server, the rest in order; other servers are not held up', async (t) => {
  const limiter = new RequestLimiter(2);
  const gates = Array.from({ length: 5 }, later);
  const order: number[] = [];
  let peak = 0;
  let active = 0;
  const runs = gates.map((g, i) => limiter.run('https://a', async () => {
    active++;
    peak = Math.max(peak, active);
    order.push(i);
    await g.promise;
    active--;
    return i;
  }));
  await new Promise((r) => setImmediate(r));
  t.same(limiter.load('https://a'), { active: 2, waiting: 3 });
  t.equal(await limiter.run('https://b', async () => 'b'), 'b', 'another server has its own slots');
  for (const g of gates) g.resolve();
  t.same(await Promise.all(runs), [0, 1, 2, 3, 4]);
  t.equal(peak, 2);
  t.same(order, [0, 1, 2, 3, 4], 'first come, first served');
  t.same(limiter.load('https://a'), { active: 0, waiting: 0 });
});

t.test('a failing request frees its slot; an aborted wait leaves the queue', async (t) => {
  const limiter = new RequestLimiter(1);
  await t.rejects(limiter.run('s', async () => {
    throw new Error('500');
  }), /500/);
  const gate = later();
  const first = limiter.run('s', () => gate.promise);
  const ac = new AbortController();
  const waiting = limiter.run('s', async () => 'never', ac.signal);
  await new Promise((r) => setImmediate(r));
  ac.abort(new Error('stopping'));
  await t.rejects(waiting, /stopping/);
  t.same(limiter.load('s'), { active: 1, waiting: 0 });
  gate.resolve();
  await first;
  t.throws(() => new RequestLimiter(0), /whole number >= 1/);
});

t.test('the rate: a burst of qps at once, then qps a second, per server', async (t) => {
  const limiter = new RequestLimiter(100, 10);
  const start = Date.now();
  const started: number[] = [];
  await Promise.all(Array.from({ length: 25 }, () => limiter.run('s', async () => {
    started.push(Date.now() - start);
  })));
  started.sort((a, b) => a - b);
  t.ok(started.slice(0, 10).every((ms) => ms < 50), `the first 10 at once: ${started.slice(0, 10).join(' ')}`);
  t.ok(started[10]! >= 90, `the 11th a tenth of a second later: ${started[10]}`);
  t.ok(started[24]! >= 1400 && started[24]! < 2200, `25 requests at 10/s with a burst of 10: the last after ~1.5 s (${started[24]} ms)`);
  const other = Date.now();
  await limiter.pace('another server');
  t.ok(Date.now() - other < 50, 'another server has its own rate');
  const ac = new AbortController();
  const paced = Array.from({ length: 30 }, () => limiter.pace('s', ac.signal).then(() => 'went', () => 'aborted'));
  ac.abort();
  t.ok((await Promise.all(paced)).includes('aborted'), 'an abort ends the wait');
  t.throws(() => new RequestLimiter(1, 0), /whole number >= 1/);
});
