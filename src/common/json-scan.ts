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

/** A kept array or object had more than `maxKeptItems` items or members. */
export class JsonScanLimitError extends JsonScanError {
  override name = 'JsonScanLimitError';
}

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'literal';

/** A value's place in the text: `text.slice(start, end)` is its exact source. */
export interface ScannedValue {
  kind: JsonKind;
  start: number;
  end: number;
  /**
   * The bytes of the value as PostgreSQL prints it from jsonb (`payload::text`, what receivers
   * get): numbers written out in full (`1e1000` is 1,001 digits), strings re-escaped, ", " and
   * ": " between items. Exact, except that an object with a repeated key counts both members
   * (jsonb keeps the last), so it is never less than the printed size.
   */
  printedBytes: number;
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
  /** Kept objects and arrays with more members or items than this fail (JsonScanLimitError). */
  maxKeptItems?: number;
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

/**
 * The bytes PostgreSQL prints for one character of a jsonb string (escape_json): \" \\ and the
 * five short escapes take 2, other control characters \u00XX (6), anything else its UTF-8 (a
 * surrogate pair is two halves of 2).
 */
function printedChar(c: number): number {
  if (c === QUOTE || c === BACKSLASH) return 2;
  if (c < 0x20) return c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
  if (c < 0x80) return 1;
  if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) return 2;
  return 3;
}

/**
 * The bytes of a JSON number as PostgreSQL prints it (jsonb numbers are numeric): the integer
 * part in full, then a point and `dscale` decimals when dscale > 0, where dscale is the decimals
 * written less the exponent (`1.50e1` prints "15.0", `0e-5` "0.00000", `1e3` "1000"); a minus
 * only when the value is not zero. PostgreSQL refuses what is too large for numeric (a 400 at
 * the insert); the count here only has to be right for what it accepts, and large for the rest.
 */
function printedNumber(negative: boolean, int: string, frac: string, exponent: number): number {
  const decimals = Math.max(0, frac.length - exponent);
  const digits = int + frac;
  const firstSignificant = digits.search(/[1-9]/);
  // The power of ten of the first significant digit; the integer part has that many digits + 1.
  const magnitude = firstSignificant < 0 ? -1 : int.length - 1 - firstSignificant + exponent;
  const intDigits = Math.max(1, magnitude + 1);
  const sign = negative && firstSignificant >= 0 ? 1 : 0;
  return sign + intDigits + (decimals > 0 ? 1 + decimals : 0);
}

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
      const printedBytes = this.string();
      return { kind: 'string', start, end: this.pos, printedBytes };
    }
    if (c === MINUS || isDigit(c)) {
      const printedBytes = this.number();
      return { kind: 'number', start, end: this.pos, printedBytes };
    }
    for (const word of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { kind: 'literal', start, end: this.pos, printedBytes: word.length };
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
    const maxItems = keep ? (this.options.maxKeptItems ?? Infinity) : Infinity;
    // "[" and "]", then ", " between items; an object's members print as `key: value`.
    let printedBytes = 2;
    this.pos++;
    this.whitespace();
    if (this.text.charCodeAt(this.pos) === close) {
      this.pos++;
      return { kind, start, end: this.pos, printedBytes, members, items };
    }
    for (let count = 1; ; count++) {
      this.whitespace();
      if (count > maxItems) {
        throw new JsonScanLimitError(`more than ${maxItems} items at position ${this.pos}`);
      }
      if (count > 1) printedBytes += 2;
      if (kind === 'object') {
        if (this.text.charCodeAt(this.pos) !== QUOTE) this.fail('expected a quoted key');
        const keyStart = this.pos;
        printedBytes += this.string() + 2;
        const keyEnd = this.pos;
        this.whitespace();
        if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':'");
        this.pos++;
        const value = this.value(depth);
        printedBytes += value.printedBytes;
        // Only kept objects decode their keys: a 100,000-key payload allocates nothing here.
        if (members) {
          members.push({ key: JSON.parse(this.text.slice(keyStart, keyEnd)) as string, value });
        }
      } else {
        const value = this.value(depth);
        printedBytes += value.printedBytes;
        items?.push(value);
      }
      this.whitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === close) return { kind, start, end: this.pos, printedBytes, members, items };
      if (c !== 0x2c) {
        this.pos--;
        this.fail(kind === 'object' ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  /** Scans a string; returns its printed bytes (printedChar of each character, and quotes). */
  private string(): number {
    const { text } = this;
    let printed = 2;
    this.pos++; // the opening quote
    for (;;) {
      const c = text.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c === QUOTE) {
        this.pos++;
        return printed;
      }
      if (c < 0x20) this.fail('unescaped control character in a string');
      if (c === BACKSLASH) {
        const e = text.charCodeAt(this.pos + 1);
        if (e === 0x75) {
          for (let i = 2; i < 6; i++) {
            if (!isHex(text.charCodeAt(this.pos + i))) this.fail('bad \\u escape');
          }
          printed += printedChar(parseInt(text.slice(this.pos + 2, this.pos + 6), 16));
          this.pos += 6;
          continue;
        }
        if (!SIMPLE_ESCAPES.has(e)) this.fail('bad escape');
        printed += e === 0x2f ? 1 : 2; // "\/" prints as "/"
        this.pos += 2;
        continue;
      }
      printed += printedChar(c);
      this.pos++;
    }
  }

  /** Scans a number; returns its printed bytes (printedNumber). */
  private number(): number {
    const { text } = this;
    const negative = text.charCodeAt(this.pos) === MINUS;
    if (negative) this.pos++;
    const intStart = this.pos;
    const first = text.charCodeAt(this.pos);
    if (first === ZERO) this.pos++;
    else if (isDigit(first)) this.digits();
    else this.fail('bad number');
    const intEnd = this.pos;
    let fracStart = this.pos;
    if (text.charCodeAt(this.pos) === 0x2e) {
      this.pos++;
      fracStart = this.pos;
      if (!isDigit(text.charCodeAt(this.pos))) this.fail('bad number');
      this.digits();
    }
    const fracEnd = this.pos;
    let exponent = 0;
    const e = text.charCodeAt(this.pos);
    if (e === 0x65 || e === 0x45) {
      this.pos++;
      const sign = text.charCodeAt(this.pos);
      if (sign === 0x2b || sign === MINUS) this.pos++;
      if (!isDigit(text.charCodeAt(this.pos))) this.fail('bad number');
      const digitsStart = this.pos;
      this.digits();
      exponent = Number(text.slice(digitsStart, this.pos)) * (sign === MINUS ? -1 : 1);
    }
    const int = text.slice(intStart, intEnd);
    const frac = text.slice(fracStart, fracEnd);
    return printedNumber(negative, int, frac, exponent);
  }

  private digits(): void {
    while (isDigit(this.text.charCodeAt(this.pos))) this.pos++;
  }
}
