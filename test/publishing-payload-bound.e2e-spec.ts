import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic } from './helpers/factories.js';

/** The most a payload may print to (MAX_PRINTED_PAYLOAD_BYTES). */
const MAX_PRINTED = 64 * 1024 * 1024;
/** The stored size under which messages_payload_printable does not look (CheaperPublish). */
const UNLOOKED = 3640;

/**
 * messages_payload_printable's WHEN lets a payload stored uncompressed in at most 3,640 bytes
 * through without calling its check: no such payload prints to more than 64 MiB. Here the
 * densest payloads of each kind, as many elements as fit, print under it; a compressed payload,
 * however small, is still checked.
 */
describe('publishing: payloads too small to print past the limit', () => {
  let db: TestDatabase;
  let topicId: number;
  beforeAll(async () => {
    db = await createTestDatabase();
    topicId = (await createTopic(db.pool, 'bound')).id;
  });
  afterAll(() => db.drop());

  const sizes = async (element: string, n: number) => {
    const { rows } = await db.pool.query<{ stored: number; printed: string }>(
      `SELECT pg_column_size(p) AS stored, octet_length(p::text) AS printed
       FROM (SELECT jsonb_agg(${element}) AS p FROM generate_series(1, $1)) AS a`,
      [n],
    );
    return { stored: rows[0].stored, printed: Number(rows[0].printed) };
  };

  const kinds: Record<string, string> = {
    // 131,072 digits before the point and 16,383 after, with a sign: the longest a number prints.
    'longest numbers': `('-1' || repeat('0', 131071) || '.' || repeat('0', 16383))::numeric`,
    'exponents alone': `'1e131071'::numeric`,
    'scales alone': `'0e-16383'::numeric`,
    'control characters': `repeat(chr(1), 100)`,
    'empty arrays': `'[]'::jsonb`,
  };

  it.each(Object.keys(kinds))(
    '%s: as many as fit print under 64 MiB, and are stored',
    async (kind) => {
      let n = 1;
      while ((await sizes(kinds[kind], n * 2)).stored <= UNLOOKED) n *= 2;
      for (let step = n / 2; step >= 1; step /= 2) {
        if ((await sizes(kinds[kind], n + step)).stored <= UNLOOKED) n += step;
      }
      const densest = await sizes(kinds[kind], n);
      expect(densest.stored).toBeLessThanOrEqual(UNLOOKED);
      expect((await sizes(kinds[kind], n + 1)).stored).toBeGreaterThan(UNLOOKED);
      expect(densest.printed).toBeLessThan(MAX_PRINTED);
      expect(densest.printed).toBeLessThanOrEqual(18_433 * densest.stored);
      await db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_agg(${kinds[kind]}) FROM generate_series(1, $2)`,
        [topicId, n],
      );
    },
  );

  it('checks a payload that comes compressed, however small it is stored', async () => {
    // 600 exponent bombs print to 78,644,400 bytes; stored, pglz makes them a few hundred.
    await db.pool.query(`CREATE TABLE bombs (payload jsonb)`);
    await db.pool.query(
      `INSERT INTO bombs SELECT jsonb_agg('1e131071'::numeric) FROM generate_series(1, 600)`,
    );
    const { rows } = await db.pool.query<{ stored: number; compression: string | null }>(
      `SELECT pg_column_size(payload) AS stored, pg_column_compression(payload) AS compression
       FROM bombs`,
    );
    expect(rows[0].compression).not.toBeNull();
    expect(rows[0].stored).toBeLessThanOrEqual(UNLOOKED);
    await expect(
      db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload) SELECT $1, 'k', payload FROM bombs`,
        [topicId],
      ),
    ).rejects.toMatchObject({ code: '23514', constraint: 'messages_payload_printable' });
  });
});
