import {
  BadRequestException,
  Injectable,
  NotFoundException,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { AppConfig } from '../config/app-config.js';
import { pgErrorCode } from '../database/pg-errors.js';
import { MessageDto } from './dto/message.dto.js';
import type { MessageToPublish } from './publish-request.js';
import { describeTopic, topicCondition, TopicRef } from '../common/topic-ref.js';

/** A published message; `created` is false for a repeat of an idempotency key. */
export interface Published {
  message: MessageDto;
  created: boolean;
}

/** A messages row as the API answers it (the publish's RETURNING); bigints arrive as text. */
interface InsertedRow {
  id: string;
  topic_id: number;
  partition_key: string;
  sequence: string;
  created_at: Date;
  idempotency_key: string | null;
  event_type: string | null;
}

/** An original message that a skipped key pointed at was gone when read: publish again. */
class OriginalGone extends Error {}

/** 40P01: PostgreSQL aborted one of two transactions waiting on each other. */
const DEADLOCK_DETECTED = '40P01';
const FOREIGN_KEY_VIOLATION = '23503';
/** Class 22: data exceptions, e.g. 22P05, a \u0000 inside JSON that jsonb cannot store. */
const DATA_EXCEPTION_CLASS = '22';
/** Tries of a publish that met a deadlock or a vanished original. */
const PUBLISH_ATTEMPTS = 3;

const toDto = (row: InsertedRow): MessageDto => ({
  id: Number(row.id),
  topic_id: row.topic_id,
  partition_key: row.partition_key,
  sequence: Number(row.sequence),
  created_at: row.created_at.toISOString(),
  idempotency_key: row.idempotency_key,
  event_type: row.event_type,
});

@Injectable()
export class MessagesService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly config: AppConfig,
  ) {}

  /**
   * Publishes one message. `created` is false when its idempotency key was already published to
   * the topic: nothing was written, and `message` is the original.
   */
  async publish(topic: TopicRef, message: MessageToPublish): Promise<Published> {
    const [published] = await this.publishAll(topic, [message], () => '');
    return published;
  }

  /**
   * Publishes up to MAX_BATCH_MESSAGES messages in one statement, so all or nothing; each comes
   * back at its input position, a repeated idempotency key as the original message.
   */
  publishBatch(topic: TopicRef, messages: MessageToPublish[]): Promise<Published[]> {
    return this.publishAll(topic, messages, (index) => `messages[${index}].`);
  }

  /**
   * One INSERT of every message, exactly what a SQL producer writes: the trigger assigns the
   * sequences and fans out the deliveries, so there is one publish path. Payloads are the JSON
   * text that was sent; PostgreSQL parses them into jsonb, which keeps every digit of numbers.
   *
   * With idempotency keys, ON CONFLICT (topic_id, idempotency_key) DO NOTHING skips a key the
   * topic has (the unique constraint decides, so concurrent repeats publish once: a second
   * inserter waits for the first to commit, then skips), and a second statement of the same
   * transaction, in a fresh snapshot, reads the originals. Should an original be gone by then
   * (retention deleted it), or a deadlock with another producer abort the statement, the whole
   * transaction is rolled back and tried again.
   */
  private async publishAll(
    topic: TopicRef,
    messages: MessageToPublish[],
    where: (index: number) => string,
  ): Promise<Published[]> {
    // Both as sent and as PostgreSQL prints it (what a receiver gets and every claim builds):
    // `[1e131071]` is 11 bytes sent and 131,074 printed.
    const limit = this.config.maxPayloadBytes;
    messages.forEach((message, index) => {
      const size = Buffer.byteLength(message.payload);
      if (size > limit) {
        throw new PayloadTooLargeException(
          `${where(index)}payload is ${size} bytes; the limit is MAX_PAYLOAD_BYTES=${limit}`,
        );
      }
      if (message.printedBytes > limit) {
        throw new PayloadTooLargeException(
          `${where(index)}payload prints to ${message.printedBytes} bytes as stored JSON ` +
            `(numbers written out in full); the limit is MAX_PAYLOAD_BYTES=${limit}`,
        );
      }
    });
    const keyed = messages.some((m) => m.idempotencyKey !== undefined);
    for (let attempt = 1; ; attempt++) {
      try {
        return keyed
          ? await this.db.transaction((manager) => this.insert(manager, topic, messages))
          : await this.insert(this.db.manager, topic, messages);
      } catch (error) {
        const retry = error instanceof OriginalGone || pgErrorCode(error) === DEADLOCK_DETECTED;
        if (retry && attempt < PUBLISH_ATTEMPTS) continue;
        if (error instanceof OriginalGone) {
          throw new ServiceUnavailableException(
            'the original message of an idempotency key was deleted while this publish read it; try again',
          );
        }
        // The topic was deleted between the lookup and the insert.
        if (pgErrorCode(error) === FOREIGN_KEY_VIOLATION) {
          throw new NotFoundException(`${describeTopic(topic)} does not exist`);
        }
        if (pgErrorCode(error)?.startsWith(DATA_EXCEPTION_CLASS)) {
          const index = await this.firstUnstorablePayload(messages);
          throw new BadRequestException(
            `${index === undefined ? '' : where(index)}payload is not storable JSON ` +
              '(PostgreSQL jsonb refuses \\u0000 and numbers beyond its range)',
          );
        }
        throw error;
      }
    }
  }

  private async insert(
    manager: EntityManager,
    topic: TopicRef,
    messages: MessageToPublish[],
  ): Promise<Published[]> {
    // A key given again later in the same batch is a repeat of its first item: not sent at all.
    const firstWithKey = new Map<string, number>();
    const repeatOf = messages.map((m, index) => {
      if (m.idempotencyKey === undefined) return undefined;
      const first = firstWithKey.get(m.idempotencyKey);
      if (first === undefined) firstWithKey.set(m.idempotencyKey, index);
      return first;
    });
    const sent = messages.filter((_, index) => repeatOf[index] === undefined);

    // Rows go in partition order (in C collation), each partition's in input order: its
    // sequences follow the input, and two batches lock the partitions' counters in the same
    // order, so they cannot deadlock on each other.
    const where = topicCondition(topic, 't', 1);
    const rows = await manager.query<InsertedRow[]>(
      `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key, event_type)
       SELECT t.id, i.partition_key, i.payload::jsonb, i.idempotency_key, i.event_type
       FROM topics t,
            unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
              AS i(partition_key, payload, idempotency_key, event_type, position)
       WHERE ${where.sql}
       ORDER BY i.partition_key COLLATE "C", i.position
       ON CONFLICT (topic_id, idempotency_key) DO NOTHING
       RETURNING id, topic_id, partition_key, sequence, created_at, idempotency_key, event_type`,
      [
        where.value,
        sent.map((m) => m.partitionKey),
        sent.map((m) => m.payload),
        sent.map((m) => m.idempotencyKey ?? null),
        sent.map((m) => m.eventType ?? null),
      ],
    );
    const ours = new Set(rows.flatMap((r) => r.idempotency_key ?? []));
    const theirs = [...firstWithKey.keys()].filter((key) => !ours.has(key));
    const originals = new Map<string, MessageDto>();
    if (rows.length === 0 || theirs.length > 0) {
      const found = await manager.query<(Partial<InsertedRow> & { topic: number })[]>(
        `SELECT t.id AS topic, m.id, m.topic_id, m.partition_key, m.sequence, m.created_at,
                m.idempotency_key, m.event_type
         FROM topics t
         LEFT JOIN messages m ON m.topic_id = t.id AND m.idempotency_key = ANY($2::text[])
         WHERE ${where.sql}`,
        [where.value, theirs],
      );
      if (found.length === 0) throw new NotFoundException(`${describeTopic(topic)} does not exist`);
      for (const row of found) {
        if (row.id != null) originals.set(row.idempotency_key!, toDto(row as InsertedRow));
      }
      if (originals.size < theirs.length) throw new OriginalGone();
    }

    // A partition's rows in sequence order are its inserted messages in input order.
    const byPartition = new Map<string, InsertedRow[]>();
    for (const row of rows) {
      const list = byPartition.get(row.partition_key) ?? [];
      list.push(row);
      byPartition.set(row.partition_key, list);
    }
    for (const list of byPartition.values()) {
      list.sort((a, b) => Number(a.sequence) - Number(b.sequence));
    }
    const published: Published[] = [];
    messages.forEach((m, index) => {
      const first = repeatOf[index];
      const original = m.idempotencyKey === undefined ? undefined : originals.get(m.idempotencyKey);
      if (first !== undefined) {
        published.push({ message: published[first].message, created: false });
      } else if (original) {
        published.push({ message: original, created: false });
      } else {
        const row = byPartition.get(m.partitionKey)?.shift();
        if (!row) throw new Error(`the publish INSERT returned no row for message ${index}`);
        published.push({ message: toDto(row), created: true });
      }
    });
    return published;
  }

  /**
   * The first message whose payload jsonb refuses, by halving: about ten statements for a
   * thousand messages, on the error path only. Undefined when each alone is storable.
   */
  private async firstUnstorablePayload(messages: MessageToPublish[]): Promise<number | undefined> {
    const storable = (from: number, to: number) =>
      this.db
        .query(`SELECT count(p::jsonb) FROM unnest($1::text[]) AS p`, [
          messages.slice(from, to).map((m) => m.payload),
        ])
        .then(
          () => true,
          () => false,
        );
    if (await storable(0, messages.length)) return undefined;
    let [from, to] = [0, messages.length];
    while (to - from > 1) {
      const middle = (from + to) >> 1;
      if (await storable(from, middle)) from = middle;
      else to = middle;
    }
    return from;
  }

  /**
   * One message as JSON text, its payload exactly as PostgreSQL stores it (jsonb's text form,
   * never parsed into JavaScript numbers). An API-published payload prints to at most
   * MAX_PAYLOAD_BYTES; anything larger (only a SQL producer can write it) is not brought into the
   * API's memory at all, and one that prints to more than PostgreSQL can build
   * (pgwq_payload_text) is a 422 too, never an error after building a gigabyte.
   */
  async showJson(id: number): Promise<string> {
    const limit = 2 * this.config.maxPayloadBytes;
    const rows = await this.db.query<
      (InsertedRow & {
        payload_bytes: number | null;
        problem: string | null;
        payload: string | null;
      })[]
    >(
      `SELECT m.id, m.topic_id, m.partition_key, m.sequence, m.created_at, m.idempotency_key,
              m.event_type, octet_length(p.body) AS payload_bytes, p.problem,
              CASE WHEN octet_length(p.body) <= $2 THEN p.body END AS payload
       FROM messages m CROSS JOIN LATERAL pgwq_payload_text(m.payload) p
       WHERE m.id = $1`,
      [id, limit],
    );
    if (rows.length === 0) throw new NotFoundException(`message ${id} does not exist`);
    const [row] = rows;
    if (row.problem !== null) {
      throw new UnprocessableEntityException(`message ${id} cannot be shown: ${row.problem}`);
    }
    if (row.payload === null) {
      throw new UnprocessableEntityException(
        `the payload of message ${id} is ${row.payload_bytes} bytes, over the ${limit} bytes ` +
          'the API returns (2 x MAX_PAYLOAD_BYTES); read it with SQL',
      );
    }
    const meta = toDto(row);
    return `${JSON.stringify(meta).slice(0, -1)},"payload":${row.payload}}`;
  }
}
