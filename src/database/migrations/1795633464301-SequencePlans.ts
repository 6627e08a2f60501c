import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * pgwq_assign_sequence plans its lookups on indexes, always (sql/notify_trigger.sql, part 1).
 *
 * PL/pgSQL caches a generic plan of each statement after five calls in a session. When the
 * tables were analyzed while (nearly) empty, that plan reads partition_sequences, messages and
 * delivery_lines with sequential scans, and keeps reading them so as they grow: a statement
 * that inserts into many new partitions rescans every row it inserted before, for each row.
 * One INSERT of 20,000 new partitions took 42 s (about 70 minutes at 200,000), against 2.9 s
 * with index scans (PostgreSQL 15, right after ANALYZE of the empty tables). Every lookup of the
 * function is a primary-key or unique-index probe, so a sequential scan is never the better plan.
 */
export class SequencePlans1795633464301 implements MigrationInterface {
  name = 'SequencePlans1795633464301';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER FUNCTION pgwq_assign_sequence() SET enable_seqscan = off`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER FUNCTION pgwq_assign_sequence() RESET enable_seqscan`);
  }
}
