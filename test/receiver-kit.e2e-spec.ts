import { Inbox, verify, WebhookGuard, WebhookVerificationError } from '@pgwq/receiver';
import { metadataSignatureHeader, signatureHeader } from '../src/delivery/signature.js';
import pg from 'pg';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

const SECRET = 'whsec_' + Buffer.alloc(32, 1).toString('base64');
const OLD_SECRET = 'whsec_' + Buffer.alloc(32, 2).toString('base64');
const NOW = 1_800_000_000_000;

/** Headers and body as the worker signs them (its own signing functions). */
function signed(
  overrides: Record<string, string | undefined> = {},
  secrets = [SECRET],
  body = '{"n": 1}',
) {
  const headers: Record<string, string | undefined> = {
    'webhook-id': '42',
    'webhook-timestamp': String(NOW / 1000),
    'webhook-topic': 'orders',
    'webhook-partition-key': 'user-1',
    'webhook-sequence': '3',
    'webhook-attempt': '2',
    ...overrides,
  };
  const value = (name: string) => headers[name] ?? '';
  headers['webhook-signature'] = signatureHeader(secrets, value('webhook-id'), NOW / 1000, body);
  headers['webhook-metadata-signature'] = metadataSignatureHeader(secrets, {
    id: value('webhook-id'),
    timestamp: value('webhook-timestamp'),
    topic: value('webhook-topic'),
    partitionKey: value('webhook-partition-key'),
    sequence: value('webhook-sequence'),
    previousSequence: value('webhook-previous-sequence'),
    eventType: value('webhook-event-type'),
  });
  return { headers, body };
}

const now = () => NOW;

describe('receiver kit: verify', () => {
  it('returns the delivery of a request the worker signed', () => {
    expect(verify(signed({ 'webhook-event-type': 'order.paid' }), SECRET, { now })).toEqual({
      id: '42',
      timestamp: NOW / 1000,
      topic: 'orders',
      partitionKey: 'user-1',
      sequence: 3,
      previousSequence: undefined,
      eventType: 'order.paid',
      attempt: 2,
      payload: { n: 1 },
      body: '{"n": 1}',
    });
    expect(verify(signed({ 'webhook-previous-sequence': '' }), SECRET, { now })).toMatchObject({
      previousSequence: null,
    });
    expect(verify(signed({ 'webhook-previous-sequence': '2' }), SECRET, { now })).toMatchObject({
      previousSequence: 2,
    });
  });

  it('accepts any of several signatures and several secrets during a rotation', () => {
    const both = signed({}, [SECRET, OLD_SECRET]);
    expect(verify(both, SECRET, { now }).sequence).toBe(3);
    expect(verify(both, OLD_SECRET, { now }).sequence).toBe(3);
    expect(verify(signed({}, [OLD_SECRET]), [SECRET, OLD_SECRET], { now }).sequence).toBe(3);
  });

  it.each([
    ['another secret', () => verify(signed(), OLD_SECRET, { now }), /webhook-signature does not/],
    [
      'a changed body',
      () => verify({ ...signed(), body: '{"n": 2}' }, SECRET, { now }),
      /webhook-signature does not match the body/,
    ],
    [
      'a changed sequence',
      () =>
        verify(
          { ...signed(), headers: { ...signed().headers, 'webhook-sequence': '1000000' } },
          SECRET,
          { now },
        ),
      /webhook-metadata-signature does not match the ordering headers/,
    ],
    [
      'an old timestamp (a replay)',
      () => verify(signed(), SECRET, { now: () => NOW + 301_000 }),
      /more than 300 s from now/,
    ],
    [
      'no webhook-id',
      () => verify(signed({ 'webhook-id': undefined }), SECRET, { now }),
      /webhook-id is missing/,
    ],
  ])('refuses %s', (_, attempt, reason) => {
    expect(attempt).toThrow(WebhookVerificationError);
    expect(attempt).toThrow(reason);
  });

  it('WebhookGuard passes a signed raw body and puts the delivery on the request', () => {
    const { headers, body } = signed();
    const request: Record<string, unknown> = { headers, rawBody: Buffer.from(body) };
    const context = { switchToHttp: () => ({ getRequest: <T>() => request as T }) };
    expect(new WebhookGuard(SECRET, { now }).canActivate(context)).toBe(true);
    expect(request.webhook).toMatchObject({ sequence: 3 });
    expect(new WebhookGuard(OLD_SECRET, { now }).canActivate(context)).toBe(false);
    const refuse = (reason: string) => new Error(`401: ${reason}`);
    expect(() => new WebhookGuard(OLD_SECRET, { now, refuse }).canActivate(context)).toThrow(
      /^401: webhook-signature does not match/,
    );
  });
});

describe('receiver kit: Inbox', () => {
  let db: TestDatabase;
  /** The receiver's own database, on its default search_path (never the queue's schema). */
  let pool: pg.Pool;
  const inbox = new Inbox();
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    pool = new pg.Pool({ connectionString: db.url });
    await inbox.install(pool);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  /** Runs accept in a transaction that commits. */
  async function accept(
    sequence: number,
    previousSequence?: number | null,
    options: { webhook?: string; allowGap?: boolean } = {},
    partitionKey = 'user-1',
  ) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const delivery = { id: `m${sequence}`, topic: 'orders', partitionKey, sequence };
      const result = await inbox.accept(client, { ...delivery, previousSequence }, options);
      await client.query('COMMIT');
      return result.status;
    } finally {
      client.release();
    }
  }

  it('accepts each sequence once, in order, per line', async () => {
    expect(await accept(1, null)).toBe('accepted');
    expect(await accept(1, null)).toBe('duplicate');
    expect(await accept(2)).toBe('accepted');
    expect(await accept(1, null, { webhook: 'other-endpoint' })).toBe('accepted');
    expect(await accept(1, null, {}, 'user-2')).toBe('accepted');
  });

  it('reports a gap from webhook-previous-sequence, or from sequence − 1 without it', async () => {
    expect(await accept(4)).toBe('gap'); // 3 never applied
    expect(await accept(5, 3)).toBe('gap');
    expect(await accept(5, 2)).toBe('accepted'); // 3 and 4 were never on this line (filters)
    expect(await accept(7, null, { webhook: 'new' })).toBe('accepted'); // the line's first
    // A line first seen at 7 without the header (partition older than the endpoint).
    expect(await accept(7, undefined, { webhook: 'late' })).toBe('gap');
    expect(await accept(7, undefined, { webhook: 'late', allowGap: true })).toBe('accepted');
  });

  it('forgets an accept whose transaction rolls back', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const delivery = { id: 'x', topic: 'orders', partitionKey: 'user-3', sequence: 1 };
      expect((await inbox.accept(client, delivery)).status).toBe('accepted');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await accept(1, undefined, {}, 'user-3')).toBe('accepted');
  });

  it('makes a redelivery racing the first attempt wait for it, then see a duplicate', async () => {
    const first = await pool.connect();
    try {
      await first.query('BEGIN');
      const delivery = { id: 'r', topic: 'orders', partitionKey: 'user-4', sequence: 1 };
      expect((await inbox.accept(first, delivery)).status).toBe('accepted');
      const second = accept(1, undefined, {}, 'user-4');
      // The second waits on the first's row lock before it decides.
      for (let i = 0; ; i++) {
        const { rows } = await pool.query(
          `SELECT 1 FROM pg_locks WHERE NOT granted AND pid IN
             (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`,
        );
        if (rows.length > 0) break;
        if (i > 500) throw new Error('the second accept never waited');
        await new Promise((r) => setTimeout(r, 10));
      }
      await first.query('COMMIT');
      expect(await second).toBe('duplicate');
    } finally {
      first.release();
    }
  });
});
