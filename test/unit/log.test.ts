import t from 'tap';
import { createLogger, redact } from '../../src/base/log.js';

t.test('redacts tokens, bearer headers and private keys', async (t) => {
  t.equal(redact('token abcdef.0123456789abcdef here'), 'token abcdef.[redacted] here');
  t.equal(redact('Authorization: Bearer sekrit'), 'Authorization: Bearer [redacted]');
  t.equal(redact('x -----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY----- y'), 'x [private key redacted] y');
});

t.test('text and json formats, verbosity', async (t) => {
  const lines: string[] = [];
  const now = () => new Date('2026-01-02T03:04:05.000Z');
  const text = createLogger({ write: (l) => lines.push(l), now, verbosity: 1 });
  text.info('hello', { a: 1, b: 'two words', c: undefined });
  text.debug(1, 'shown');
  text.debug(2, 'hidden');
  t.same(lines, ['2026-01-02T03:04:05.000Z INFO  hello a=1 b="two words"', '2026-01-02T03:04:05.000Z DEBUG shown']);
  lines.length = 0;
  const json = createLogger({ format: 'json', write: (l) => lines.push(l), now });
  json.warn('w', { token: 'abcdef.0123456789abcdef' });
  t.same(JSON.parse(lines[0]!), { ts: '2026-01-02T03:04:05.000Z', level: 'warn', msg: 'w', token: 'abcdef.[redacted]' });
});
