// How failures are told: the first one, then at most one line a minute, then the recovery; many
// identities failing alike make one summary line. Driven by a fake clock.
import t from 'tap';
import { createLogger, prefixed } from '../../src/base/log.js';
import { FailureLog } from '../../src/node/failures.js';

function setup(): { log: FailureLog; lines: string[]; tick: (ms: number) => void; idLog: (id: string) => ReturnType<typeof prefixed> } {
  let now = 1_000_000;
  const lines: string[] = [];
  const root = createLogger({ write: (l) => lines.push(l), now: () => new Date(now) });
  return { log: new FailureLog(root, () => now), lines, tick: (ms) => (now += ms), idLog: (id) => prefixed(root, id) };
}

t.test('one identity: first failure, one line a minute while it goes on, then the recovery', async (t) => {
  const { log, lines, tick, idLog } = setup();
  const a = idLog('a');
  // An outage of 3 minutes, retried every ~16 s: 12 attempts.
  for (let i = 0; i < 12; i++) {
    log.failed('a', a, 'cannot reach https://api:6443: connect ECONNREFUSED', { attempt: i + 1 });
    tick(16_000);
  }
  log.recovered('a', a);
  t.equal(lines.length, 4, lines.join('\n'));
  t.match(lines[0], /WARN  could not get a certificate; retrying identity=a error="cannot reach .*ECONNREFUSED" attempt=1/);
  t.match(lines[1], /WARN  still failing the same way; retrying identity=a .*attempts=5 failingFor=1m4s/);
  t.match(lines[2], /attempts=9 failingFor=2m8s/, 'a minute later (attempts 10 to 12 fall within the minute)');
  t.match(lines[3], /INFO  recovered: a valid certificate is on disk again identity=a failedAttempts=12 failingFor=3m12s/);
  log.failed('a', a, 'cannot reach https://api:6443: connect ECONNREFUSED', { attempt: 1 });
  t.match(lines[4], /WARN  could not get a certificate; retrying identity=a/, 'after a recovery, a failure is a first one again');
});

t.test('a different error is told at once; a recovery without a failure says nothing', async (t) => {
  const { log, lines, idLog } = setup();
  const a = idLog('a');
  log.recovered('a', a);
  log.failed('a', a, 'connect ECONNREFUSED', {});
  log.failed('a', a, 'connect ECONNREFUSED', {});
  log.failed('a', a, '503 ServiceUnavailable', {});
  t.equal(lines.length, 2);
  t.match(lines[1], /503 ServiceUnavailable/);
});

t.test('1,000 identities through a 60 s outage: a handful of lines, not thousands', async (t) => {
  const { log, lines, tick, idLog } = setup();
  const logs = Array.from({ length: 1000 }, (_, i) => idLog(`n${i}`));
  // Every identity tries every ~16 s for 60 s, spread by jitter (here: in turn, 16 ms apart).
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 1000; i++) {
      log.failed(`n${i}`, logs[i]!, 'cannot reach https://api:6443: connect ECONNREFUSED', { attempt: round + 1 });
      tick(16);
    }
  }
  t.ok(lines.length <= 4, `${lines.length} lines:\n${lines.join('\n')}`);
  t.match(lines[0], /could not get a certificate; retrying identity=n0/, 'the first failure');
  const summaries = lines.slice(1);
  t.ok(summaries.length >= 2, 'summaries while the failing group grows');
  for (const l of summaries) t.match(l, /WARN  \d+ identities fail with the same error; retrying error="cannot reach .*failingFor=\d+s some=n0,n1,n2/);
  t.ok(summaries.every((l) => !l.includes('identity=')), 'the summaries are the daemon\'s, not an identity\'s');
  t.ok(Number(/identities=(\d+)/.exec(summaries.at(-1)!)?.[1]) >= 600, 'the last one counts most of the fleet');
  // Still failing a minute on: one more summary, with all of them.
  tick(60_000);
  log.failed('n5', logs[5]!, 'cannot reach https://api:6443: connect ECONNREFUSED', { attempt: 5 });
  t.match(lines.at(-1), /1000 identities fail with the same error/);
  for (let i = 0; i < 1000; i++) log.recovered(`n${i}`, logs[i]!);
  t.equal(lines.filter((l) => l.includes('recovered')).length, 1000, 'each identity says it recovered');
});

t.test('an identity a reload dropped leaves the summaries without a word', async (t) => {
  const { log, lines, tick, idLog } = setup();
  for (const id of ['a', 'b', 'c']) log.failed(id, idLog(id), 'boom', {});
  log.forget('c');
  log.forget('never-failed');
  tick(6_000);
  log.failed('a', idLog('a'), 'boom', {});
  t.match(lines.at(-1), /2 identities fail with the same error/);
  t.notOk(lines.some((l) => l.includes('identity=c')), 'c said nothing');
});

t.test('the per-attempt detail is at debug level', async (t) => {
  const lines: string[] = [];
  const root = createLogger({ write: (l) => lines.push(l), verbosity: 1 });
  const log = new FailureLog(root);
  log.failed('a', root, 'boom', { attempt: 1, retryInMs: 1234 });
  log.failed('a', root, 'boom', { attempt: 2, retryInMs: 2345 });
  t.equal(lines.filter((l) => /DEBUG attempt failed error=boom attempt=\d retryInMs=\d+/.test(l)).length, 2);
  t.equal(lines.filter((l) => l.includes('WARN')).length, 1);
});
