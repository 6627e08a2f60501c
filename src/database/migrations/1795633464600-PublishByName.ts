import { MigrationInterface, QueryRunner } from 'typeorm';
import { pinned } from './1795633463950-DeliveryFunctions.js';

/** 1–128 characters of A-Z a-z 0-9 _ . : / - (it travels in the webhook-event-type header). */
export const EVENT_TYPE_PATTERN = '^[A-Za-z0-9_.:/-]{1,128}$';

/**
 * Publishing by topic name from the producer's own transaction, and the message's event type.
 *
 * - messages.event_type: nullable, checked like the API checks it.
 * - pgwq_publish(topic, partition_key, payload, event_type, idempotency_key) inserts one message
 *   (the same INSERT an SQL producer writes, so the same trigger gives it its sequence and
 *   deliveries) and returns its id. An unknown topic raises undefined_object (42704) naming it.
 *   A repeated idempotency key publishes nothing and returns the first message's id: the INSERT
 *   … ON CONFLICT DO NOTHING waits for a concurrent publisher of the same key to finish, so the
 *   SELECT after it sees that message once it is committed.
 */
export class PublishByName1795633464600 implements MigrationInterface {
  name = 'PublishByName1795633464600';

  public async up(queryRunner: QueryRunner): Promise<void> {
    const [{ schema }] = await queryRunner.query(`SELECT quote_ident(current_schema()) AS schema`);
    await queryRunner.query(`ALTER TABLE messages ADD COLUMN event_type text`);
    await queryRunner.query(
      `ALTER TABLE messages ADD CONSTRAINT messages_event_type_check
         CHECK (event_type ~ '${EVENT_TYPE_PATTERN}')`,
    );
    await queryRunner.query(
      PUBLISH.replace('LANGUAGE plpgsql', `${pinned(schema)} LANGUAGE plpgsql`),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP FUNCTION pgwq_publish(text, text, jsonb, text, text)`);
    await queryRunner.query(`ALTER TABLE messages DROP COLUMN event_type`);
  }
}

const PUBLISH = `
CREATE FUNCTION pgwq_publish(
  topic text,
  partition_key text,
  payload jsonb,
  event_type text DEFAULT NULL,
  idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  found_topic integer;
  published bigint;
BEGIN
  SELECT t.id INTO found_topic FROM topics t WHERE t.name = pgwq_publish.topic;
  IF found_topic IS NULL THEN
    RAISE EXCEPTION 'topic "%" does not exist', pgwq_publish.topic
      USING ERRCODE = 'undefined_object',
            HINT = 'Create it first: POST /topics {"name": "' || pgwq_publish.topic || '"}';
  END IF;
  INSERT INTO messages AS m (topic_id, partition_key, payload, event_type, idempotency_key)
  VALUES (found_topic, pgwq_publish.partition_key, pgwq_publish.payload,
          pgwq_publish.event_type, pgwq_publish.idempotency_key)
  ON CONFLICT ON CONSTRAINT messages_idempotency_key DO NOTHING
  RETURNING m.id INTO published;
  IF published IS NULL THEN
    SELECT m.id INTO published FROM messages m
    WHERE m.topic_id = found_topic
      AND m.idempotency_key = pgwq_publish.idempotency_key;
  END IF;
  RETURN published;
END
$$`;
