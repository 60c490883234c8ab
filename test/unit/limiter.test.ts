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
