// The deferred Intl.Segmenter of the executable's snapshot: the same segments as the real one,
// and no ICU segmenter made for printable ASCII.
import t from 'tap';
import { lazySegmenterClass } from '../../src/base/segmenter.js';

/** A real Segmenter class that counts how many it made. */
function counting(): { Real: typeof Intl.Segmenter; made: () => number } {
  let n = 0;
  class Counting extends Intl.Segmenter {
    constructor(...args: ConstructorParameters<typeof Intl.Segmenter>) {
      super(...args);
      n++;
    }
  }
  return { Real: Counting, made: () => n };
}

const SAMPLES = ['', 'tlsboot run --once', '  --node-name  [string]', 'a\r\nb', 'naïve café', '👩‍👩‍👧 family', '日本語のテキスト', 'e\u0301', '\x1b[31mred\x1b[0m', 'tab\there'];

t.test('segments as Intl.Segmenter does, for every granularity', async (t) => {
  const Lazy = lazySegmenterClass(Intl.Segmenter);
  for (const granularity of ['grapheme', 'word', 'sentence'] as const) {
    for (const s of SAMPLES) {
      const want = [...new Intl.Segmenter(undefined, { granularity }).segment(s)];
      const got = [...new Lazy(undefined, { granularity }).segment(s)];
      t.same(got.map((g) => [g.segment, g.index]), want.map((g) => [g.segment, g.index]), `${granularity}: ${JSON.stringify(s)}`);
    }
  }
});

t.test('printable ASCII needs no ICU segmenter; anything else makes one, once', async (t) => {
  const { Real, made } = counting();
  const Lazy = lazySegmenterClass(Real);
  const seg = new Lazy();
  t.same([...seg.segment('--help  Show help')].length, 17);
  t.same(seg.segment('abc').containing(1), { segment: 'b', index: 1, input: 'abc' });
  t.equal(seg.segment('abc').containing(3), undefined);
  t.equal(made(), 0, 'none made for ASCII');
  t.same([...seg.segment('a\r\nb')].map((g) => g.segment), ['a', '\r\n', 'b'], 'CRLF is one grapheme: not the ASCII path');
  [...seg.segment('日本')];
  t.equal(made(), 1, 'one made, and kept');
  t.equal(seg.resolvedOptions().granularity, 'grapheme');
  t.equal(made(), 1);
  t.same(Lazy.supportedLocalesOf(['en']), Intl.Segmenter.supportedLocalesOf(['en']));
});
