/**
 * A JSON scanner that validates a document (RFC 8259) and reports where its values are in the
 * text, without building them. The publish path uses it to take a payload as the exact text that
 * was sent: JSON.parse would turn 12345678901234567890 into 12345678901234567000 and 1e999 into
 * Infinity, and building a 100,000-key object only to serialise it again costs time and memory.
 *
 * Node 20 has no way to get a value's source text out of JSON.parse (the reviver's `context.source`
 * arrived in Node 21), and the npm parsers that keep numbers exact (lossless-json, json-bigint)
 * still build every object of the payload, so this stays a small scanner of our own.
 */

export class JsonScanError extends Error {
  override name = 'JsonScanError';
}

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'literal';

/** A value's place in the text: `text.slice(start, end)` is its exact source. */
export interface ScannedValue {
  kind: JsonKind;
  start: number;
  end: number;
  /** An object's members, in order, when the object is within `keepDepth`. */
  members?: ScannedMember[];
  /** An array's items, when the array is within `keepDepth`. */
  items?: ScannedValue[];
}

export interface ScannedMember {
  /** The decoded key. */
  key: string;
  value: ScannedValue;
}

export interface ScanOptions {
  /** The deepest nesting of arrays and objects allowed (a top-level object is depth 1). */
  maxDepth: number;
  /** Objects and arrays up to this depth report their members or items; deeper ones only spans. */
  keepDepth: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

const isDigit = (c: number) => c >= ZERO && c <= NINE;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
/** The characters that may follow a backslash: " \ / b f n r t (u is handled apart). */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const LITERALS = ['true', 'false', 'null'];

/** Scans `text` as one JSON value; throws JsonScanError saying what is wrong and where. */
export function scanJson(text: string, options: ScanOptions): ScannedValue {
  return new Scanner(text, options).document();
}

class Scanner {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly options: ScanOptions,
  ) {}

  document(): ScannedValue {
    const value = this.value(0);
    this.whitespace();
    if (this.pos < this.text.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(what: string): never {
    throw new JsonScanError(`${what} at position ${this.pos}`);
  }

  private whitespace(): void {
    const { text } = this;
    while (this.pos < text.length) {
      const c = text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  /** A value at nesting `depth` (the number of arrays and objects around it). */
  private value(depth: number): ScannedValue {
    this.whitespace();
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x7b) return this.container(depth + 1, 'object');
    if (c === 0x5b) return this.container(depth + 1, 'array');
    const start = this.pos;
    if (c === QUOTE) {
      this.string();
      return { kind: 'string', start, end: this.pos };
    }
    if (c === MINUS || isDigit(c)) {
      this.number();
      return { kind: 'number', start, end: this.pos };
    }
    for (const word of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { kind: 'literal', start, end: this.pos };
      }
    }
    this.fail(Number.isNaN(c) ? 'unexpected end of JSON' : 'unexpected character');
  }

  private container(depth: number, kind: 'object' | 'array'): ScannedValue {
    if (depth > this.options.maxDepth) {
      this.fail(`nested deeper than ${this.options.maxDepth} levels of arrays and objects`);
    }
    const start = this.pos;
    const keep = depth <= this.options.keepDepth;
    const members: ScannedMember[] | undefined = keep && kind === 'object' ? [] : undefined;
    const items: ScannedValue[] | undefined = keep && kind === 'array' ? [] : undefined;
    const close = kind === 'object' ? 0x7d : 0x5d;
    this.pos++;
    this.whitespace();
    if (this.text.charCodeAt(this.pos) === close) {
      this.pos++;
      return { kind, start, end: this.pos, members, items };
    }
    for (;;) {
      if (kind === 'object') {
        this.whitespace();
        if (this.text.charCodeAt(this.pos) !== QUOTE) this.fail('expected a quoted key');
        const keyStart = this.pos;
        this.string();
        const keyEnd = this.pos;
        this.whitespace();
        if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':'");
        this.pos++;
        const value = this.value(depth);
        // Only kept objects decode their keys: a 100,000-key payload allocates nothing here.
        if (members) {
          members.push({ key: JSON.parse(this.text.slice(keyStart, keyEnd)) as string, value });
        }
      } else {
        const value = this.value(depth);
        items?.push(value);
      }
      this.whitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === close) return { kind, start, end: this.pos, members, items };
      if (c !== 0x2c) {
        this.pos--;
        this.fail(kind === 'object' ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  private string(): void {
    const { text } = this;
    this.pos++; // the opening quote
    for (;;) {
      const c = text.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c === QUOTE) {
        this.pos++;
        return;
      }
      if (c < 0x20) this.fail('unescaped control character in a string');
      if (c === BACKSLASH) {
        const e = text.charCodeAt(this.pos + 1);
        if (e === 0x75) {
          for (let i = 2; i < 6; i++) {
            if (!isHex(text.charCodeAt(this.pos + i))) this.fail('bad \\u escape');
          }
          this.pos += 6;
          continue;
        }
        if (!SIMPLE_ESCAPES.has(e)) this.fail('bad escape');
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
  }

  private number(): void {
    const { text } = this;
    if (text.charCodeAt(this.pos) === MINUS) this.pos++;
    const first = text.charCodeAt(this.pos);
    if (first === ZERO) this.pos++;
    else if (isDigit(first)) this.digits();
    else this.fail('bad number');
    if (text.charCodeAt(this.pos) === 0x2e) {
      this.pos++;
      if (!isDigit(text.charCodeAt(this.pos))) this.fail('bad number');
      this.digits();
    }
    const e = text.charCodeAt(this.pos);
    if (e === 0x65 || e === 0x45) {
      this.pos++;
      const sign = text.charCodeAt(this.pos);
      if (sign === 0x2b || sign === MINUS) this.pos++;
      if (!isDigit(text.charCodeAt(this.pos))) this.fail('bad number');
      this.digits();
    }
  }

  private digits(): void {
    while (isDigit(this.text.charCodeAt(this.pos))) this.pos++;
  }
}
