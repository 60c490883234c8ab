// An Intl.Segmenter that makes its ICU segmenter only when it first meets text beyond printable
// ASCII. The single executable's start-up snapshot cannot hold an ICU object (V8 fails the build
// with "global handle not serialized"), and yargs' string-width makes one when it loads. Making
// the real one at run time costs about 15 ms, which every command would pay for its help text
// (yargs renders it on each run), although that text is ASCII.

type SegmenterArgs = ConstructorParameters<typeof Intl.Segmenter>;

/** Printable ASCII: UAX #29 joins no two of these characters into one grapheme cluster. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** `Intl.Segmenter`, deferred; see the module comment. Install with {@link installLazySegmenter}. */
export function lazySegmenterClass(Real: typeof Intl.Segmenter): typeof Intl.Segmenter {
  class LazySegmenter {
    readonly #args: SegmenterArgs;
    #real: Intl.Segmenter | undefined;
    static supportedLocalesOf = Real.supportedLocalesOf.bind(Real);
    constructor(...args: SegmenterArgs) {
      this.#args = args;
    }
    #ensure(): Intl.Segmenter {
      this.#real ??= new Real(...this.#args);
      return this.#real;
    }
    segment(input: string): Intl.Segments {
      const granularity = this.#args[1]?.granularity ?? 'grapheme';
      if (granularity === 'grapheme' && PRINTABLE_ASCII.test(input)) return asciiGraphemes(input);
      return this.#ensure().segment(input);
    }
    resolvedOptions(): Intl.ResolvedSegmenterOptions {
      return this.#ensure().resolvedOptions();
    }
  }
  return LazySegmenter as typeof Intl.Segmenter;
}

/** The grapheme segments of printable ASCII text: one per character. */
function asciiGraphemes(input: string): Intl.Segments {
  const at = (index: number): Intl.SegmentData => ({ segment: input[index]!, index, input });
  return {
    containing: (codeUnitIndex = 0) => (codeUnitIndex >= 0 && codeUnitIndex < input.length ? at(Math.trunc(codeUnitIndex)) : undefined),
    *[Symbol.iterator]() {
      for (let i = 0; i < input.length; i++) yield at(i);
    },
  } as Intl.Segments;
}

/** Replace the global Intl.Segmenter with the deferred one (the executable's snapshot build). */
export function installLazySegmenter(): void {
  Object.defineProperty(Intl, 'Segmenter', { value: lazySegmenterClass(Intl.Segmenter), configurable: true, writable: true });
}
