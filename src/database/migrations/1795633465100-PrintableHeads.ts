import { MigrationInterface, QueryRunner } from 'typeorm';
import { PAYLOAD_TEXT } from './1795633464300-BoundedPayloads.js';
import { replaceFunction } from './1795633464800-SetBasedRecord.js';
import { PRINTABLE_WITHOUT_LOOKING } from './1795633465000-CheaperPublish.js';

/**
 * pgwq_payload_text, which the claim and the record call for every head they hand out, prints a
 * payload stored uncompressed in at most PRINTABLE_WITHOUT_LOOKING bytes at once: such a payload
 * cannot print past the limit (CheaperPublish says why), so the walk over its numbers and the
 * subtransaction around the printing are skipped. Larger or compressed payloads are looked at as
 * before. The same rule as the trigger that refuses unprintable payloads at insert.
 */
export class PrintableHeads1795633465100 implements MigrationInterface {
  name = 'PrintableHeads1795633465100';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, printableAtOnce());
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await replaceFunction(queryRunner, PAYLOAD_TEXT);
  }
}

function printableAtOnce(): string {
  const begin = `BEGIN\n  FOR n IN`;
  if (PAYLOAD_TEXT.split(begin).length !== 2) throw new Error('pgwq_payload_text has changed');
  return PAYLOAD_TEXT.replace(
    begin,
    () => `BEGIN
  IF pg_column_size(payload) <= ${PRINTABLE_WITHOUT_LOOKING}
     AND pg_column_compression(payload) IS NULL THEN
    body := payload::text;
    RETURN;
  END IF;
  FOR n IN`,
  );
}
