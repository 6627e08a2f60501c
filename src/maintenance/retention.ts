import { Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import type { MaintenanceTask } from './maintenance-task.js';

/**
 * Deliveries looked at per step of the walk over delivered ones, and dead ones deleted per batch.
 * Each takes its logged attempts along (ON DELETE CASCADE): none or a few rows apiece.
 */
const DELIVERIES_PER_BATCH = 1000;
/** Messages looked at per step of the sweep for messages without deliveries. */
const MESSAGES_PER_SWEEP = 1000;

/**
 * A step of the walk over deliveries in id order (the primary key): of the $2 after $3, those
 * delivered more than $1 seconds ago are deleted, with the message id of each; `last` is the
 * last id looked at, `recent` says every one of them was created within $1 seconds (a delivery
 * is delivered after it is created, so the walk has passed every one old enough). No index of
 * deliveries reads its status or delivered_at, so marking a delivery delivered stays a heap-only
 * update (migration HotRecords1795633464900); a step costs the same at any table size. SKIP
 * LOCKED: a row someone holds (a replay making it pending again) is left, and the lock re-checks
 * the status on the newest version, so a delivery made pending after our snapshot stays.
 */
const DELETE_DELIVERED = `
WITH scanned AS MATERIALIZED (
  SELECT id, created_at FROM deliveries WHERE id > $3 ORDER BY id LIMIT $2
), doomed AS (
  SELECT dd.id FROM deliveries AS dd
  WHERE dd.id IN (SELECT id FROM scanned)
    AND dd.status = 'delivered'
    AND dd.delivered_at < now() - make_interval(secs => $1::double precision)
  FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM deliveries AS d USING doomed WHERE d.id = doomed.id RETURNING d.message_id
)
SELECT (SELECT max(id) FROM scanned)::text AS last,
       coalesce((SELECT bool_and(created_at >= now() - make_interval(secs => $1::double precision))
                 FROM scanned), true) AS recent,
       (SELECT count(*) FROM gone)::int AS deleted,
       ARRAY(SELECT DISTINCT message_id FROM gone)::text[] AS message_ids
`;

/**
 * The same for dead deliveries (deliveries_dead_since_idx (dead_at) WHERE dead_at IS NOT NULL:
 * dead_at is set exactly when the status is dead), except one its line has not passed: a
 * blocked line's head stays dead in place until an operator redrives or skips it, so it stays.
 */
const DELETE_DEAD = `
DELETE FROM deliveries AS d
USING (
  SELECT id FROM deliveries AS dd
  WHERE dead_at < now() - make_interval(secs => $1::double precision)
    AND dead_at IS NOT NULL
    AND NOT EXISTS (
      SELECT 1 FROM delivery_lines l
      WHERE l.webhook_id = dd.webhook_id AND l.partition_key = dd.partition_key
        AND l.head_sequence <= dd.sequence
    )
  ORDER BY dead_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AS doomed
WHERE d.id = doomed.id
RETURNING d.message_id
`;

/** Up to $2 audit log entries older than $1 seconds, oldest first (audit_log_at_idx). */
const DELETE_AUDIT = `
DELETE FROM audit_log
WHERE id IN (
  SELECT id FROM audit_log
  WHERE at < now() - make_interval(secs => $1::double precision)
  ORDER BY at
  LIMIT $2
)
`;

/**
 * A chunk of messages after $1 in id order: the last id seen, whether all of them are younger
 * than $3 seconds (the sweep has reached the recent ones), and those older without a delivery.
 */
const SWEEP_MESSAGES = `
WITH scanned AS (
  SELECT id, created_at FROM messages WHERE id > $1 ORDER BY id LIMIT $2
)
SELECT (SELECT max(id) FROM scanned) AS last,
       coalesce((SELECT bool_and(created_at >= now() - make_interval(secs => $3::double precision))
                 FROM scanned), true) AS recent,
       ARRAY(
         SELECT s.id FROM scanned s
         WHERE s.created_at < now() - make_interval(secs => $3::double precision)
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = s.id)
       ) AS orphans
`;

/**
 * Of messages $1, the ones without a delivery, locked. SKIP LOCKED, and FOR UPDATE conflicts with
 * the key-share lock that inserting a delivery takes on its message: a message someone is giving
 * a delivery right now is skipped, and once we hold the lock nobody can give it one until we
 * commit (their insert then fails its foreign key check: the message is gone).
 */
const LOCK_ORPHANS = `
SELECT id FROM messages AS m
WHERE m.id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)
FOR UPDATE SKIP LOCKED
`;

/**
 * Deletes them, checking again in this statement's fresh snapshot: a delivery committed between
 * the lock statement's snapshot and the lock itself is seen here, so a message still needed
 * stays. (One statement could not do this: a re-check after a lock wait reads other tables in
 * the old snapshot, and the message's ON DELETE CASCADE would take the new delivery with it.)
 */
const DELETE_ORPHANS = `
DELETE FROM messages AS m
WHERE m.id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)
`;

/**
 * Retention (DESIGN §7): deletes delivered deliveries older than RETENTION_DELIVERED_SECONDS and
 * dead ones older than RETENTION_DEAD_SECONDS, with their attempts, the messages that are left
 * without any delivery, and audit log entries older than RETENTION_AUDIT_SECONDS. A message with
 * no delivery from the start (published before its topic had a webhook, or whose webhook was
 * deleted) goes once it is older than RETENTION_DELIVERED_SECONDS, found by a slow sweep over
 * messages in id order. Pending deliveries and every message a remaining delivery refers to stay;
 * partition_sequences and delivery_lines are never touched, so numbering goes on where it was.
 *
 * Each batch is one small step: a step of the walk over deliveries, else up to
 * DELIVERIES_PER_BATCH dead deliveries, else a step of the sweep; the Maintenance loop runs one
 * batch at a time across workers and pauses between them. A step of a walk that deleted nothing
 * ends the round; the walk goes on from there at the next.
 */
@Injectable()
export class Retention implements MaintenanceTask {
  readonly name = 'retention';
  readonly lockKey = 2;
  private readonly logger = new Logger(Retention.name);
  /** Where the walk over deliveries goes on from; 0 starts a new pass. */
  private walkedPast = '0';
  /** Where the sweep for messages without deliveries goes on from; 0 starts a new pass. */
  private sweptPast = '0';
  /** Rows deleted since the last log line. */
  private deleted = { deliveries: 0, messages: 0 };

  constructor(private readonly config: AppConfig) {}

  async runBatch(client: pg.ClientBase): Promise<boolean> {
    const { retentionDeliveredSeconds: delivered, retentionDeadSeconds: dead } = this.config;
    if (delivered > 0 && (await this.walkDelivered(client, delivered))) return true;
    if (dead > 0) {
      const { rows } = await client.query<{ message_id: string }>(DELETE_DEAD, [
        dead,
        DELIVERIES_PER_BATCH,
      ]);
      if (rows.length > 0) {
        this.deleted.deliveries += rows.length;
        await this.deleteOrphans(client, [...new Set(rows.map((r) => r.message_id))]);
        return true;
      }
    }
    if (delivered > 0 && (await this.sweep(client, delivered))) return true;
    const audit = this.config.retentionAuditSeconds;
    if (
      audit > 0 &&
      ((await client.query(DELETE_AUDIT, [audit, DELIVERIES_PER_BATCH])).rowCount ?? 0) > 0
    ) {
      return true;
    }
    if (this.deleted.deliveries + this.deleted.messages > 0) {
      this.logger.log(
        `retention deleted ${this.deleted.deliveries} deliveries (with their attempts) and ` +
          `${this.deleted.messages} messages`,
      );
      this.deleted = { deliveries: 0, messages: 0 };
    }
    return false;
  }

  /** One step of the walk over deliveries; true when it deleted some (more may be right behind). */
  private async walkDelivered(client: pg.ClientBase, olderThan: number): Promise<boolean> {
    const { rows } = await client.query<{
      last: string | null;
      recent: boolean;
      deleted: number;
      message_ids: string[];
    }>(DELETE_DELIVERED, [olderThan, DELIVERIES_PER_BATCH, this.walkedPast]);
    const [{ last, recent, deleted, message_ids: messageIds }] = rows;
    this.walkedPast = last === null || recent ? '0' : last;
    if (deleted === 0) return false;
    this.deleted.deliveries += deleted;
    await this.deleteOrphans(client, messageIds);
    return true;
  }

  /** One step of the sweep; true when it deleted messages (there may be more right behind). */
  private async sweep(client: pg.ClientBase, olderThan: number): Promise<boolean> {
    const { rows } = await client.query<{
      last: string | null;
      recent: boolean;
      orphans: string[];
    }>(SWEEP_MESSAGES, [this.sweptPast, MESSAGES_PER_SWEEP, olderThan]);
    const [{ last, recent, orphans }] = rows;
    this.sweptPast = last === null || recent ? '0' : last;
    return orphans.length > 0 && (await this.deleteOrphans(client, orphans)) > 0;
  }

  private async deleteOrphans(client: pg.ClientBase, candidates: string[]): Promise<number> {
    const locked = await client.query<{ id: string }>(LOCK_ORPHANS, [candidates]);
    if (locked.rowCount === 0) return 0;
    const gone = await client.query(DELETE_ORPHANS, [locked.rows.map((r) => r.id)]);
    this.deleted.messages += gone.rowCount ?? 0;
    return gone.rowCount ?? 0;
  }
}
