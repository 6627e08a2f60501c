import { Inject, Injectable } from '@nestjs/common';
import pg from 'pg';
import { PG_POOL } from '../database/pg-pool.module.js';
import { recordAction } from '../database/action-record.js';
import { inTransaction } from '../database/transaction.js';
import { LOCK_FREE_LINES, LOCK_LINE, REWIND_LINES } from './queue.sql.js';

/** One line to rewind, with the deliveries it may rewind (for batching). */
interface LineToRewind {
  webhook_id: number;
  partition_key: string;
  /** replay: the first sequence to send again; redrive: null. */
  from_sequence: string | null;
  deliveries: number;
}

/** Deliveries per REWIND_LINES statement: a few hundred milliseconds of locks at most. */
const DELIVERIES_PER_BATCH = 5000;

/** REWIND_LINES's first row. */
interface Rewound {
  rewound: number;
  /** The lowest sequence it rewound, or null. */
  lowest: string | null;
}

/**
 * Every dead delivery that a redrive's filters choose, counted per line, in line order. Dead is
 * dead_at IS NOT NULL (set exactly when the status is dead), the predicate of the dead indexes.
 */
const DEAD_LINES = `
SELECT d.webhook_id, d.partition_key, NULL::bigint AS from_sequence, count(*)::int AS deliveries
FROM deliveries d
JOIN webhooks w ON w.id = d.webhook_id AND w.deleted_at IS NULL
WHERE d.dead_at IS NOT NULL
  AND ($1::bigint[] IS NULL OR d.id = ANY ($1::bigint[]))
  AND ($2::int IS NULL OR d.webhook_id = $2::int)
  AND ($3::int IS NULL OR d.topic_id = $3::int)
  AND ($4::text IS NULL OR d.partition_key = $4::text)
  AND ($5::timestamptz IS NULL OR d.dead_at >= $5::timestamptz)
  AND ($6::timestamptz IS NULL OR d.dead_at < $6::timestamptz)
GROUP BY d.webhook_id, d.partition_key
ORDER BY d.webhook_id, d.partition_key
`;

/**
 * A replay's lines: each partition of the webhook from its first delivery published since $2, or
 * the one partition $3 from sequence $4. The count is the line's span, an upper bound.
 */
const REPLAY_LINES = `
SELECT l.webhook_id, l.partition_key, f.from_sequence::text,
       greatest(l.tail_sequence - f.from_sequence + 1, 0)::int AS deliveries
FROM (
  SELECT d.partition_key, min(d.sequence) AS from_sequence
  FROM deliveries d
  WHERE d.webhook_id = $1 AND $2::timestamptz IS NOT NULL AND d.created_at >= $2::timestamptz
  GROUP BY d.partition_key
  UNION ALL
  SELECT $3::text, $4::bigint WHERE $3::text IS NOT NULL
) AS f
JOIN delivery_lines l ON l.webhook_id = $1 AND l.partition_key = f.partition_key
ORDER BY l.partition_key
`;

export interface RedriveFilter {
  delivery_ids?: number[];
  webhook_id?: number;
  topic_id?: number;
  partition_key?: string;
  since?: string;
  until?: string;
}

/**
 * Redrive and replay (DESIGN §7): both make deliveries pending again and send their lines back
 * to the first of them. The lines are chosen first (a read: what each batch rewinds is decided
 * again after its locks), then rewound in batches of whole lines, and a line bigger than a batch
 * in slices of its own, each its own short transaction (REWIND_LINES), so 100,000 deliveries,
 * in many lines or in one, never hold locks for long nor time out the request, and delivery and
 * publishing go on between batches. A crash between batches leaves the batches done and the
 * rest untouched (a big line's head not yet moved back: replaying or redriving again finishes).
 *
 * The operator's record of the rewind (the audit log) is written in its transactions too
 * (Progress): there is no one transaction to put it in, so each brings it up to what it commits.
 */
@Injectable()
export class RewindService {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}

  async redrive(filter: RedriveFilter): Promise<number> {
    const { rows } = await this.pool.query<LineToRewind>(DEAD_LINES, [
      filter.delivery_ids ?? null,
      filter.webhook_id ?? null,
      filter.topic_id ?? null,
      filter.partition_key ?? null,
      filter.since ?? null,
      filter.until ?? null,
    ]);
    return this.rewind(rows, 'redrive', [
      filter.delivery_ids ?? null,
      filter.since ?? null,
      filter.until ?? null,
    ]);
  }

  async replay(
    webhookId: number,
    from: { since: string } | { partition_key: string; from_sequence: number },
  ): Promise<number> {
    const { rows } = await this.pool.query<LineToRewind>(REPLAY_LINES, [
      webhookId,
      'since' in from ? from.since : null,
      'since' in from ? null : from.partition_key,
      'since' in from ? null : from.from_sequence,
    ]);
    return this.rewind(rows, 'replay', [null, null, null]);
  }

  private async rewind(
    lines: LineToRewind[],
    mode: 'redrive' | 'replay',
    filters: unknown[],
  ): Promise<number> {
    const progress = new Progress(mode);
    for (const batch of batches(lines)) {
      if (batch.length === 1 && batch[0].deliveries > DELIVERIES_PER_BATCH) {
        await this.rewindInSlices(batch[0], mode, filters, progress);
        continue;
      }
      const { done, busy } = await inTransaction(this.pool, async (client) => {
        const { rows: locked } = await client.query<LineKey>(LOCK_FREE_LINES, [
          batch.map((line) => line.webhook_id),
          batch.map((line) => line.partition_key),
        ]);
        const free = new Set(locked.map(keyOf));
        const lockedLines = batch.filter((line) => free.has(keyOf(line)));
        const result = await this.rewindStatement(client, lockedLines, mode, filters, {});
        await progress.record(client, result.rewound);
        return { done: result.rewound, busy: batch.filter((line) => !free.has(keyOf(line))) };
      });
      progress.committed(done);
      // Held by someone else (a producer's open transaction, a worker's record): each alone,
      // waiting for its own lock and holding no other.
      for (const line of busy) {
        const done = await inTransaction(this.pool, async (client) => {
          await client.query(LOCK_LINE, [line.webhook_id, line.partition_key]);
          const { rewound } = await this.rewindStatement(client, [line], mode, filters, {});
          await progress.record(client, rewound);
          return rewound;
        });
        progress.committed(done);
      }
    }
    return progress.total;
  }

  /**
   * A line too big for one batch: slices of DELIVERIES_PER_BATCH from its highest sequences down,
   * each in its own transaction, and last the statement that moves its head back (REWIND_LINES
   * says why the order holds meanwhile). Only that last one locks the line (waiting for it, and
   * holding no other): the slices before it change only deliveries that are not pending and
   * leave the line's row alone, so neither a producer on the partition nor the worker's record
   * of its head (a pending delivery) ever waits for them; what the worker finishes meanwhile
   * the last statement takes, after the lock.
   */
  private async rewindInSlices(
    line: LineToRewind,
    mode: 'redrive' | 'replay',
    filters: unknown[],
    progress: Progress,
  ): Promise<void> {
    let lowest: string | null = null;
    const step = async (slice: {
      below: string | null;
      limit: number | null;
      movesHead: boolean;
    }) => {
      const result = await inTransaction(this.pool, async (client) => {
        if (slice.movesHead) await client.query(LOCK_LINE, [line.webhook_id, line.partition_key]);
        const done = await this.rewindStatement(client, [line], mode, filters, {
          ...slice,
          lowest,
        });
        await progress.record(client, done.rewound);
        return done;
      });
      progress.committed(result.rewound);
      return result;
    };
    for (;;) {
      const slice = await step({ below: lowest, limit: DELIVERIES_PER_BATCH, movesHead: false });
      if (slice.lowest !== null) lowest = slice.lowest;
      if (slice.rewound < DELIVERIES_PER_BATCH) break;
    }
    await step({ below: lowest, limit: null, movesHead: true });
  }

  private async rewindStatement(
    client: pg.ClientBase,
    lines: LineToRewind[],
    mode: 'redrive' | 'replay',
    filters: unknown[],
    slice: {
      below?: string | null;
      limit?: number | null;
      movesHead?: boolean;
      lowest?: string | null;
    },
  ): Promise<Rewound> {
    if (lines.length === 0) return { rewound: 0, lowest: null };
    const { rows } = await client.query<Rewound>(REWIND_LINES, [
      lines.map((line) => line.webhook_id),
      lines.map((line) => line.partition_key),
      lines.map((line) => line.from_sequence),
      mode,
      ...filters,
      lines.map(() => slice.below ?? null),
      slice.limit ?? null,
      slice.movesHead ?? true,
      lines.map(() => slice.lowest ?? null),
    ]);
    return rows[0];
  }
}

/**
 * How far a rewind has come, and the operator's record of it: every transaction of the rewind
 * writes, before it commits, the total it brings the rewind to, so the record never says more
 * or less than what has committed, and a transaction whose record fails rolls back with it (the
 * answer is then an error; the transactions before it stay done, and rewinding again finishes).
 */
class Progress {
  total = 0;
  private readonly field: string;

  constructor(mode: 'redrive' | 'replay') {
    this.field = mode === 'redrive' ? 'redriven' : 'replayed';
  }

  /** In a transaction of the rewind that rewinds `more`, before it commits. */
  record(client: pg.ClientBase, more: number): Promise<void> {
    return recordAction(client, { [this.field]: this.total + more });
  }

  /** Once that transaction committed. */
  committed(more: number): void {
    this.total += more;
  }
}

interface LineKey {
  webhook_id: number;
  partition_key: string;
}

const keyOf = (line: LineKey) => `${line.webhook_id}/${line.partition_key}`;

/** Whole lines, in order, about DELIVERIES_PER_BATCH deliveries a batch (a bigger line alone). */
function* batches(lines: LineToRewind[]): Generator<LineToRewind[]> {
  let batch: LineToRewind[] = [];
  let size = 0;
  for (const line of lines) {
    if (batch.length > 0 && size + line.deliveries > DELIVERIES_PER_BATCH) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(line);
    size += line.deliveries;
  }
  if (batch.length > 0) yield batch;
}
