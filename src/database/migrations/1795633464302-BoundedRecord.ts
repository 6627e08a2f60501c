import { MigrationInterface, QueryRunner } from 'typeorm';
import { CLAIMED_LINE_COLUMNS, headOfLines, pinned } from './1795633463950-DeliveryFunctions.js';
import { BUSY_ROW, RECORD_ATTEMPTS } from './1795633464200-LockThenRead.js';
import { boundedHeadOfLines } from './1795633464300-BoundedPayloads.js';

/**
 * pgwq_record_attempts hands a kept line's next head to the worker as the claim does since
 * BoundedPayloads: its body from pgwq_payload_text, and body_problem when it cannot be sent. A
 * payload written before the insert check that printed past what PostgreSQL can build would
 * otherwise fail the whole record, and with it every other line's result in the same call.
 */
export class BoundedRecord1795633464302 implements MigrationInterface {
  name = 'BoundedRecord1795633464302';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await replaceRecord(queryRunner, boundedRecordAttempts());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await replaceRecord(queryRunner, RECORD_ATTEMPTS);
  }
}

async function replaceRecord(queryRunner: QueryRunner, create: string): Promise<void> {
  const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
  // Its result gains a column: CREATE OR REPLACE cannot change that.
  await queryRunner.query(`DROP FUNCTION pgwq_record_attempts`);
  await queryRunner.query(create.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`));
}

function boundedRecordAttempts(): string {
  const head = headOfLines('line');
  const columns = `${CLAIMED_LINE_COLUMNS})`;
  const busy = `RETURN QUERY SELECT ${BUSY_ROW};`;
  if (![head, columns, busy].every((part) => RECORD_ATTEMPTS.includes(part))) {
    throw new Error('pgwq_record_attempts has changed');
  }
  return RECORD_ATTEMPTS.replace(head, () => boundedHeadOfLines('line'))
    .replace(columns, () => `${CLAIMED_LINE_COLUMNS},\n  body_problem text)`)
    .replace(busy, () => `RETURN QUERY SELECT ${BUSY_ROW}, NULL::text;`);
}
