import { BREAKER_RULES, CircuitBreakers, destinationOf } from './circuit-breaker.js';

describe('CircuitBreakers', () => {
  let now = 1_000_000;
  const breakers = () => new CircuitBreakers(1000, () => now);
  const fail = (b: CircuitBreakers, d: string) => b.ended(d, b.tryStart(d)!, 'unreachable');
  const answer = (b: CircuitBreakers, d: string) => b.ended(d, b.tryStart(d)!, 'answered');

  beforeEach(() => {
    now = 1_000_000;
  });

  it('opens after MIN_FAILURES failures that are at least half of the window', () => {
    const b = breakers();
    for (let i = 1; i < BREAKER_RULES.minFailures; i++) expect(fail(b, 'h')).toBeUndefined();
    expect(b.isBlocked('h')).toBe(false);
    expect(fail(b, 'h')).toBe('opened');
    expect(b.isBlocked('h')).toBe(true);
    expect(b.tryStart('h')).toBeUndefined();
    expect(b.retryInMs('h')).toBe(BREAKER_RULES.openMs);
    // Other destinations are not affected.
    expect(b.tryStart('other')).toBe('request');
  });

  it('stays closed while most requests are answered, 5xx included', () => {
    const b = breakers();
    for (let i = 0; i < 20; i++) {
      answer(b, 'h');
      if (i % 3 === 0) fail(b, 'h');
    }
    expect(b.isBlocked('h')).toBe(false);
  });

  it('forgets failures older than the window', () => {
    const b = breakers();
    for (let i = 1; i < BREAKER_RULES.minFailures; i++) fail(b, 'h');
    now += BREAKER_RULES.windowMs + 1;
    expect(fail(b, 'h')).toBeUndefined();
    expect(b.isBlocked('h')).toBe(false);
  });

  it('lets one probe through when the open time is up: an answer closes it', () => {
    const b = breakers();
    for (let i = 0; i < BREAKER_RULES.minFailures; i++) fail(b, 'h');
    now += BREAKER_RULES.openMs;
    expect(b.tryStart('h')).toBe('probe');
    expect(b.tryStart('h')).toBeUndefined(); // one probe at a time
    expect(b.retryInMs('h')).toBe(1000);
    expect(b.ended('h', 'probe', 'answered')).toBe('closed');
    expect(b.tryStart('h')).toBe('request');
  });

  it('opens again for twice as long when the probe fails, up to the maximum', () => {
    const b = breakers();
    for (let i = 0; i < BREAKER_RULES.minFailures; i++) fail(b, 'h');
    let open: number = BREAKER_RULES.openMs;
    for (let round = 0; round < 6; round++) {
      now += open;
      expect(b.ended('h', b.tryStart('h')!, 'unreachable')).toBe('opened');
      open = Math.min(open * 2, BREAKER_RULES.maxOpenMs);
      expect(b.retryInMs('h')).toBe(open);
    }
    expect(open).toBe(BREAKER_RULES.maxOpenMs);
  });

  it('ignores requests that were cancelled, and results of requests sent before it opened', () => {
    const b = breakers();
    for (let i = 0; i < 10; i++) b.ended('h', b.tryStart('h')!, 'cancelled');
    expect(b.isBlocked('h')).toBe(false);
    for (let i = 0; i < BREAKER_RULES.minFailures; i++) fail(b, 'h');
    expect(b.ended('h', 'request', 'answered')).toBeUndefined();
    expect(b.isBlocked('h')).toBe(true);
    now += BREAKER_RULES.openMs;
    expect(b.ended('h', b.tryStart('h')!, 'cancelled')).toBeUndefined();
    expect(b.tryStart('h')).toBe('probe'); // a cancelled probe leaves room for the next
  });

  it('keys destinations by origin', () => {
    expect(destinationOf('https://Example.com:443/a?b')).toBe('https://example.com');
    expect(destinationOf('http://127.0.0.1:8080/hook')).toBe('http://127.0.0.1:8080');
  });
});
