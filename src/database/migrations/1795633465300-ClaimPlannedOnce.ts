import { MigrationInterface, QueryRunner } from 'typeorm';
import { mannersClaimLines } from './1795633464750-WebhookManners.js';
import { KEYED_PLANNING, replaceFunction } from './1795633464800-SetBasedRecord.js';

/**
 * pgwq_claim_lines plans its statements once per server session, not on every claim.
 *
 * The plan cache gives a statement with parameters five custom plans, then keeps planning it
 * afresh while a generic plan looks dearer than the custom ones did; for the claim it always
 * does, so every claim paid the planning of its dozen-relation statement again: a claim of two
 * lines took 1.2–1.4 ms, of which 0.2 ms executing (auto_explain, PostgreSQL 15). With the
 * settings the set-based record uses (a generic plan, each line found by its key) it takes
 * 0.55–0.65 ms. Claims are frequent where lines are short: a worker claims each time a slot
 * frees, so ten webhooks of four messages a line cost a claim per one and a half lines.
 */
export class ClaimPlannedOnce1795633465300 implements MigrationInterface {
  name = 'ClaimPlannedOnce1795633465300';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, claimPlannedOnce());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, mannersClaimLines());
  }
}

function claimPlannedOnce(): string {
  const base = mannersClaimLines();
  const begin = `BEGIN\nIF NOT EXISTS (SELECT 1 FROM webhook_limits) THEN`;
  if (base.split(begin).length !== 2) throw new Error(`pgwq_claim_lines has changed: ${begin}`);
  return base.replace(
    begin,
    () => `BEGIN${KEYED_PLANNING}\nIF NOT EXISTS (SELECT 1 FROM webhook_limits) THEN`,
  );
}
