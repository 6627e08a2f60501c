import type { Delivery } from './verify.js';

/** A `pg` Client or PoolClient (or anything with its `query`), inside your transaction. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/** What the inbox decided about a delivery. */
export type InboxResult =
  /** New and next in line: recorded in your transaction; apply it there and commit. */
  | { status: 'accepted'; lastSequence: number }
  /** Applied before (a redelivery): do nothing and answer 2xx. */
  | { status: 'duplicate'; lastSequence: number }
  /**
   * The message before it was never applied here (it was dead-lettered for you, or your inbox
   * started late): nothing recorded. `expectedPrevious` is what should have come before.
   */
  | { status: 'gap'; lastSequence: number; expectedPrevious: number };

export interface InboxOptions {
  /** The table (default pgwq_inbox), optionally schema-qualified: `app.pgwq_inbox`. */
  table?: string;
}

const IDENTIFIER = /^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$/;

/**
 * Exactly-once, in-order application of deliveries into your own PostgreSQL. One row per line
 * (your endpoint, topic, partition) holds the last sequence applied; `accept` locks that row in
 * your transaction, so a redelivery racing the first attempt waits for it and then sees it.
 *
 * `webhook` names your endpoint (any text: `orders-endpoint`); use one per secret/URL you register.
 */
export class Inbox {
  readonly table: string;

  constructor(options: InboxOptions = {}) {
    this.table = options.table ?? 'pgwq_inbox';
    if (!IDENTIFIER.test(this.table)) {
      throw new Error(`inbox table must be a lower-case [schema.]name (got "${this.table}")`);
    }
  }

  /** Creates the table when it is not there (run it at start, or copy it into a migration). */
  async install(db: Queryable): Promise<void> {
    await db.query(`CREATE TABLE IF NOT EXISTS ${this.table} (
      webhook text NOT NULL,
      topic text NOT NULL,
      partition_key text NOT NULL,
      last_sequence bigint NOT NULL,
      last_message_id text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (webhook, topic, partition_key)
    )`);
  }

  /**
   * Decides about `delivery` inside your open transaction (call it after BEGIN, before your own
   * writes). Accepted: the line's row now says this sequence; commit with your writes, or roll
   * back and nothing happened.
   *
   * The one that must have been applied before is `previousSequence`, from the
   * webhook-previous-sequence header: the message before this one on your endpoint's line, so
   * the sequences your endpoint never gets (its event_types filter them out) are not gaps, while
   * one dead-lettered for you is (its number is the previous sequence of the next one). Only a
   * delivery without that header (a sender older than the header) falls back to sequence − 1.
   * A gap also shows for the first message your inbox sees of a line that had messages before
   * (an inbox started late): use `allowGap` for those.
   */
  async accept(
    tx: Queryable,
    delivery: Pick<Delivery, 'id' | 'topic' | 'partitionKey' | 'sequence'> & {
      previousSequence?: Delivery['previousSequence'];
    },
    options: { webhook?: string; allowGap?: boolean } = {},
  ): Promise<InboxResult> {
    const webhook = options.webhook ?? 'default';
    const line = [webhook, delivery.topic, delivery.partitionKey];
    await tx.query(
      `INSERT INTO ${this.table} (webhook, topic, partition_key, last_sequence, last_message_id)
       VALUES ($1, $2, $3, 0, '') ON CONFLICT DO NOTHING`,
      line,
    );
    const { rows } = await tx.query(
      `SELECT last_sequence::text AS last FROM ${this.table}
       WHERE webhook = $1 AND topic = $2 AND partition_key = $3 FOR UPDATE`,
      line,
    );
    const lastSequence = Number(rows[0].last);
    if (delivery.sequence <= lastSequence) return { status: 'duplicate', lastSequence };
    // Without the header (undefined), the one before is sequence − 1; a line's first: 0.
    const expectedPrevious =
      delivery.previousSequence === undefined
        ? delivery.sequence - 1
        : (delivery.previousSequence ?? 0);
    if (expectedPrevious !== lastSequence && !options.allowGap) {
      return { status: 'gap', lastSequence, expectedPrevious };
    }
    await tx.query(
      `UPDATE ${this.table} SET last_sequence = $4, last_message_id = $5, updated_at = now()
       WHERE webhook = $1 AND topic = $2 AND partition_key = $3`,
      [...line, delivery.sequence, delivery.id],
    );
    return { status: 'accepted', lastSequence };
  }
}
