import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Makes the update that records a delivered message heap-only (HOT): the new row version goes on
 * the same page and no index gets an entry for it. PostgreSQL does that only when no indexed
 * column changes, the columns of a partial index's predicate included, and there is room on the
 * page. Marking a delivery delivered changes status, attempts, next_attempt_at,
 * last_status_code, last_error and delivered_at, so no index of deliveries may read those:
 *
 * - deliveries_pending_idx (webhook_id, id) WHERE pending goes. The queue gauges' oldest pending
 *   delivery is the oldest line head (delivery_lines, read in the same pass as the pending count);
 *   a webhook's pending deliveries are listed from deliveries_webhook_id_idx.
 * - deliveries_delivered_at_idx (delivered_at) WHERE delivered goes: retention finds delivered
 *   deliveries by their successful attempt, delivery_attempts_succeeded_idx (started_at) WHERE
 *   2xx. delivery_attempts rows are only inserted and deleted, and only a 2xx attempt gets an entry.
 * - The dead indexes are keyed on dead_at IS NOT NULL instead of status = 'dead': only
 *   dead-lettering and a redrive change dead_at. deliveries_dead_at_check makes dead_at set
 *   exactly when the status is dead, so the two conditions choose the same rows (rows that broke
 *   that, which only hand-written SQL could leave, are put right first: a dead one without a time
 *   is dead from now on, so retention keeps it its full time).
 * - fillfactor 85 on deliveries leaves each page room for the new versions of its rows (a
 *   delivery is updated a few times in its life and then deleted); the setting applies to pages
 *   filled from now on.
 *
 * Building the indexes blocks writes to deliveries and delivery_attempts for the build (about a
 * second per million rows), and adding the check reads deliveries once under a lock that blocks
 * them too; on a big install create the indexes first with CREATE INDEX CONCURRENTLY and add the
 * check NOT VALID then VALIDATE it, under these names and definitions (docs/deployment.md), and
 * this migration keeps them.
 */
export class HotRecords1795633464900 implements MigrationInterface {
  name = 'HotRecords1795633464900';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
UPDATE deliveries
SET dead_at = CASE WHEN status = 'dead' THEN now() END
WHERE (status = 'dead') <> (dead_at IS NOT NULL)
`);
    // Kept when an operator added it beforehand (NOT VALID, then VALIDATE CONSTRAINT, which
    // reads the table without blocking writes).
    await queryRunner.query(`
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conname = 'deliveries_dead_at_check' AND conrelid = 'deliveries'::regclass
  ) THEN
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_dead_at_check
      CHECK ((status = 'dead') = (dead_at IS NOT NULL));
  END IF;
END
$$
`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "deliveries_dead_letter_idx" ON "deliveries" ("id")
WHERE dead_at IS NOT NULL
`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "deliveries_webhook_dead_letter_idx" ON "deliveries" ("webhook_id", "id")
WHERE dead_at IS NOT NULL
`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "deliveries_dead_since_idx" ON "deliveries" ("dead_at")
WHERE dead_at IS NOT NULL
`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "delivery_attempts_succeeded_idx" ON "delivery_attempts" ("started_at")
WHERE status_code BETWEEN 200 AND 299
`);
    for (const index of [
      'deliveries_pending_idx',
      'deliveries_delivered_at_idx',
      'deliveries_dead_idx',
      'deliveries_webhook_dead_idx',
      'deliveries_dead_at_idx',
    ]) {
      await queryRunner.query(`DROP INDEX IF EXISTS "${index}"`);
    }
    await queryRunner.query(`ALTER TABLE "deliveries" SET (fillfactor = 85)`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "deliveries" RESET (fillfactor)`);
    await queryRunner.query(`
CREATE INDEX "deliveries_dead_at_idx" ON "deliveries" ("dead_at") WHERE status = 'dead'
`);
    await queryRunner.query(`
CREATE INDEX "deliveries_webhook_dead_idx" ON "deliveries" ("webhook_id", "id")
WHERE status = 'dead'
`);
    await queryRunner.query(
      `CREATE INDEX "deliveries_dead_idx" ON "deliveries" ("id") WHERE status = 'dead'`,
    );
    await queryRunner.query(`
CREATE INDEX "deliveries_delivered_at_idx" ON "deliveries" ("delivered_at")
WHERE status = 'delivered'
`);
    await queryRunner.query(`
CREATE INDEX "deliveries_pending_idx" ON "deliveries" ("webhook_id", "id")
WHERE status = 'pending'
`);
    await queryRunner.query(`DROP INDEX "delivery_attempts_succeeded_idx"`);
    await queryRunner.query(`DROP INDEX "deliveries_dead_since_idx"`);
    await queryRunner.query(`DROP INDEX "deliveries_webhook_dead_letter_idx"`);
    await queryRunner.query(`DROP INDEX "deliveries_dead_letter_idx"`);
    await queryRunner.query(`ALTER TABLE "deliveries" DROP CONSTRAINT "deliveries_dead_at_check"`);
  }
}
