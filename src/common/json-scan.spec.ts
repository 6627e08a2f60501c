import fc from 'fast-check';
import { JsonScanError, scanJson } from './json-scan.js';

const loose = { maxDepth: 10_000, keepDepth: 1 };

function accepts(text: string): boolean {
  try {
    scanJson(text, loose);
    return true;
  } catch (error) {
    if (!(error instanceof JsonScanError)) throw error;
    return false;
  }
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('scanJson', () => {
  it('accepts exactly what JSON.parse accepts', () => {
    const text = fc.oneof(
      fc.json(),
      fc.json().map((t) => ` \n${t}\t\r`),
      fc.string({ maxLength: 30 }),
      fc
        .tuple(fc.json(), fc.nat(40), fc.string({ maxLength: 3 }))
        .map(([t, at, junk]) => t.slice(0, at) + junk + t.slice(at)),
      fc.constantFrom(
        '',
        '-',
        '-0',
        '01',
        '1.',
        '.5',
        '1e',
        '1e+',
        '1E-7',
        '-0.0e0',
        '1e999',
        '12345678901234567890',
        '"\\u12"',
        '"\\uD800"',
        '"\\x41"',
        '"a\tb"',
        '"\\/"',
        '[1,]',
        '{"a":1,}',
        '{"a" 1}',
        '{a:1}',
        '[1 2]',
        'tru',
        'nulls',
        '\uFEFF{}',
        '{"__proto__":1}',
      ),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect([t, accepts(t)]).toEqual([t, parses(t)]);
      }),
      { numRuns: 3000 },
    );
  });

  it('reports the exact source text of each top-level member, and keys decoded', () => {
    const text = '{ "payload" : {"n": 12345678901234567890, "x": 1e999} , "k\\u0065y":"v"}';
    const doc = scanJson(text, loose);
    expect(doc.kind).toBe('object');
    expect(doc.members!.map((m) => [m.key, text.slice(m.value.start, m.value.end)])).toEqual([
      ['payload', '{"n": 12345678901234567890, "x": 1e999}'],
      ['key', '"v"'],
    ]);
    // Deeper objects are spans only.
    expect(doc.members![0].value.members).toBeUndefined();
  });

  it('keeps members and items down to keepDepth', () => {
    const text = '{"messages":[{"a":1},{"b":[2]}]}';
    const doc = scanJson(text, { maxDepth: 64, keepDepth: 3 });
    const items = doc.members![0].value.items!;
    expect(items.map((i) => i.members!.map((m) => m.key))).toEqual([['a'], ['b']]);
    expect(items[1].members![0].value.items).toBeUndefined();
  });

  it('refuses nesting deeper than maxDepth, without recursing into it', () => {
    const at = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    expect(() => scanJson(at(64), { maxDepth: 64, keepDepth: 0 })).not.toThrow();
    expect(() => scanJson(at(65), { maxDepth: 64, keepDepth: 0 })).toThrow(/deeper than 64/);
    expect(() => scanJson(at(1_000_000), { maxDepth: 64, keepDepth: 0 })).toThrow(/deeper than 64/);
  });
});
