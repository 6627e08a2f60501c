import { MigrationInterface, QueryRunner } from 'typeorm';
import {
  CLAIM_LINES,
  CLAIMED_LINE_COLUMNS,
  headOfLines,
  pinned,
} from './1795633463950-DeliveryFunctions.js';

/**
 * The most bytes a payload may print to (payload::text, the body receivers get): 64 MiB, the
 * largest MAX_PAYLOAD_BYTES. jsonb stores `1e131071` in a few bytes and prints it as 131,072
 * digits, so a small row can print to more than a worker can hold (V8 strings stop at 512 MB)
 * or PostgreSQL can build (1 GB): every claim of its line would fail, and with it the claim of
 * every other line in the same statement.
 */
export const MAX_PRINTED_PAYLOAD_BYTES = 64 * 1024 * 1024;

/**
 * Payloads that print to more than MAX_PRINTED_PAYLOAD_BYTES, which only a SQL producer can
 * write (the API refuses anything over MAX_PAYLOAD_BYTES as printed), are refused at insert, and
 * a row written before (or with the trigger disabled) costs only its own line:
 *
 * - pgwq_payload_text(payload) returns the printed payload as `body`, or NULL and why not as
 *   `problem`. Numbers are measured first, without printing them (their digits from scale() and
 *   log()): a payload whose numbers alone print over the bound is refused in milliseconds, where
 *   printing ten thousand `1e131071` took PostgreSQL 30 s to fail at 1 GB (and a claim has 5 s).
 *   Then the payload is printed, an error building it is caught (the statement that asked goes
 *   on), and its size is checked.
 * - The trigger messages_payload_printable refuses a new or changed payload with a problem
 *   (check_violation, naming the trigger as the constraint). A CHECK constraint would not do: its
 *   error message prints the whole failing row, payload included. Cost per row (PostgreSQL 15,
 *   100,000 rows of a 140-byte payload with five numbers): 9 us, against 1.7 us for printing it
 *   alone and 10 us for a jsonpath filter on numbers, which would not see a zero's scale.
 * - pgwq_claim_lines takes each head's body from pgwq_payload_text, with a new column,
 *   body_problem: the worker records such a head as dead at once (blocked, with
 *   on_exhausted = block) with the reason, sends nothing, and the claim's other lines go on.
 */
export class BoundedPayloads1795633464300 implements MigrationInterface {
  name = 'BoundedPayloads1795633464300';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    // Its result has a new column: CREATE OR REPLACE cannot change that.
    await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
    for (const create of [PAYLOAD_TEXT, REFUSE_UNPRINTABLE, boundedClaimLines()]) {
      await queryRunner.query(
        create.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
      );
    }
    await queryRunner.query(PRINTABLE_TRIGGER);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`DROP FUNCTION pgwq_claim_lines`);
    await queryRunner.query(
      CLAIM_LINES.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
    await queryRunner.query(`DROP TRIGGER messages_payload_printable ON messages`);
    await queryRunner.query(`DROP FUNCTION pgwq_refuse_unprintable_payload`);
    await queryRunner.query(`DROP FUNCTION pgwq_payload_text`);
  }
}

/**
 * pgwq_payload_text(payload) → (body, problem). STRICT: a missing message (a LEFT JOIN's NULL)
 * gives NULL for both. A number prints as its integer digits (at least one), a point or a sign,
 * and scale() decimals; counted one over at most. The inner block's EXCEPTION is a
 * subtransaction, entered only once the numbers passed.
 */
export const PAYLOAD_TEXT = `
CREATE FUNCTION pgwq_payload_text(payload jsonb, OUT body text, OUT problem text)
IMMUTABLE STRICT LANGUAGE plpgsql AS $fn$
DECLARE
  n numeric;
  digits bigint := 0;
BEGIN
  FOR n IN
    SELECT v::numeric FROM jsonb_path_query(payload, 'strict $.** ? (@.type() == "number")') AS v
  LOOP
    digits := digits + scale(n) + 2 + CASE
      WHEN abs(n) < 1 THEN 1
      WHEN abs(n) < 1e300 THEN floor(log(abs(n)::float8))::bigint + 1
      ELSE floor(log(abs(n)))::bigint + 1
    END;
    IF digits > ${MAX_PRINTED_PAYLOAD_BYTES} THEN
      problem := 'the payload prints to more than ${MAX_PRINTED_PAYLOAD_BYTES} bytes (its numbers alone)';
      RETURN;
    END IF;
  END LOOP;
  BEGIN
    body := payload::text;
  EXCEPTION WHEN program_limit_exceeded OR out_of_memory THEN
    problem := format('the payload prints to more than PostgreSQL can build (%s)', SQLERRM);
    RETURN;
  END;
  IF octet_length(body) > ${MAX_PRINTED_PAYLOAD_BYTES} THEN
    problem := format('the payload prints to more than ${MAX_PRINTED_PAYLOAD_BYTES} bytes (%s)',
                      octet_length(body));
    body := NULL;
  END IF;
END
$fn$`;

/** sql/notify_trigger.sql, part 5. */
const REFUSE_UNPRINTABLE = `
CREATE FUNCTION pgwq_refuse_unprintable_payload() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  problem text := (pgwq_payload_text(NEW.payload)).problem;
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION 'message refused: %', problem
      USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_payload_printable',
            HINT = 'A delivery carries the payload as PostgreSQL prints it (payload::text).';
  END IF;
  RETURN NEW;
END;
$$`;

const PRINTABLE_TRIGGER = `
CREATE TRIGGER messages_payload_printable
  BEFORE INSERT OR UPDATE OF payload ON messages
  FOR EACH ROW EXECUTE FUNCTION pgwq_refuse_unprintable_payload()`;

/**
 * headOfLines(`lines`) with each head's body from pgwq_payload_text and a last column,
 * body_problem: for every statement that hands a worker a head to send (the claim, and the
 * record that keeps a line).
 */
export function boundedHeadOfLines(lines: string): string {
  const head = headOfLines(lines);
  const printed = 'm.payload::text AS body,';
  const messageJoin = 'LEFT JOIN messages m ON m.id = d.message_id';
  const lastColumn = 'w.failing_since IS NOT NULL AS failing';
  if (![printed, messageJoin, lastColumn].every((part) => head.includes(part))) {
    throw new Error('headOfLines has changed');
  }
  return head
    .replace(printed, 'b.body,')
    .replace(lastColumn, `${lastColumn},\n       b.problem AS body_problem`)
    .replace(
      messageJoin,
      `${messageJoin}\nLEFT JOIN LATERAL pgwq_payload_text(m.payload) AS b ON true`,
    );
}

/** The result columns of a function that returns heads, with body_problem. */
const BOUNDED_LINE_COLUMNS = `RETURNS TABLE (${CLAIMED_LINE_COLUMNS},\n  body_problem text)`;

/** pgwq_claim_lines with each head's body from pgwq_payload_text, and its body_problem. */
function boundedClaimLines(): string {
  const head = headOfLines('claimed');
  const columns = `RETURNS TABLE (${CLAIMED_LINE_COLUMNS})`;
  if (![head, columns].every((part) => CLAIM_LINES.includes(part))) {
    throw new Error('pgwq_claim_lines has changed');
  }
  return CLAIM_LINES.replace(head, () => boundedHeadOfLines('claimed')).replace(
    columns,
    BOUNDED_LINE_COLUMNS,
  );
}
