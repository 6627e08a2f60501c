import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What retention (DESIGN §7, src/maintenance/retention.ts) reads: each batch takes the oldest
 * delivered, or the oldest dead, deliveries from the start of a partial index, so a batch costs
 * the same at ten rows or ten million, and nothing is scanned that is not going.
 *
 * Each costs one index entry per delivery finished (the status change already updates an index,
 * deliveries_dead_idx's predicate, so no heap-only update is lost). Building them blocks writes
 * to deliveries for the build (about a second per million deliveries); on a big install create
 * them first with CREATE INDEX CONCURRENTLY under these names and definitions (README,
 * "Retention"), and this migration keeps them.
 */
export class Retention1795633463900 implements MigrationInterface {
  name = 'Retention1795633463900';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "deliveries_delivered_at_idx" ON "deliveries" ("delivered_at")
WHERE status = 'delivered'
`);
    await queryRunner.query(`
CREATE INDEX IF NOT EXISTS "deliveries_dead_at_idx" ON "deliveries" ("dead_at")
WHERE status = 'dead'
`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "deliveries_dead_at_idx"`);
    await queryRunner.query(`DROP INDEX "deliveries_delivered_at_idx"`);
  }
}
