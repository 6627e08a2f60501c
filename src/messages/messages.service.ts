import {
  Injectable,
  NotFoundException,
  PayloadTooLargeException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config.js';
import { translatePgError } from '../database/pg-errors.js';
import { MessageDto } from './dto/message.dto.js';
import type { MessageToPublish } from './publish-request.js';

@Injectable()
export class MessagesService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly config: AppConfig,
  ) {}

  /**
   * One INSERT, exactly what a SQL producer writes: the trigger assigns the sequence and fans
   * out the deliveries, so there is one publish path. The payload is the JSON text that was
   * sent; PostgreSQL parses it into jsonb, which keeps every digit of its numbers.
   */
  async publish(topicName: string, message: MessageToPublish): Promise<MessageDto> {
    const size = Buffer.byteLength(message.payload);
    if (size > this.config.maxPayloadBytes) {
      throw new PayloadTooLargeException(
        `payload is ${size} bytes; the limit is MAX_PAYLOAD_BYTES=${this.config.maxPayloadBytes}`,
      );
    }
    try {
      // The topic lookup rides in the INSERT: one round trip per publish.
      const rows = await this.db.query<
        { id: string; topic_id: number; sequence: string; created_at: Date }[]
      >(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT id, $2, $3::jsonb FROM topics WHERE name = $1
         RETURNING id, topic_id, sequence, created_at`,
        [topicName, message.partitionKey, message.payload],
      );
      if (rows.length === 0) throw new NotFoundException(`topic "${topicName}" does not exist`);
      const [row] = rows;
      return {
        id: Number(row.id),
        topic_id: row.topic_id,
        partition_key: message.partitionKey,
        sequence: Number(row.sequence),
        created_at: row.created_at.toISOString(),
      };
    } catch (error) {
      translatePgError(error, {
        missing: `topic "${topicName}" does not exist`,
        invalid: 'payload is not storable JSON (PostgreSQL jsonb refuses \\u0000)',
      });
    }
  }

  /**
   * One message as JSON text, its payload exactly as PostgreSQL stores it (jsonb's text form,
   * never parsed into JavaScript numbers). The stored text form of an API-published payload is at
   * most about twice what was sent; anything larger (only a SQL producer can write it) is not
   * brought into the API's memory at all.
   */
  async showJson(id: number): Promise<string> {
    const limit = 2 * this.config.maxPayloadBytes;
    const rows = await this.db.query<
      {
        id: string;
        topic_id: number;
        partition_key: string;
        sequence: string;
        created_at: Date;
        payload_bytes: number;
        payload: string | null;
      }[]
    >(
      `SELECT m.id, m.topic_id, m.partition_key, m.sequence, m.created_at,
              octet_length(p.text) AS payload_bytes,
              CASE WHEN octet_length(p.text) <= $2 THEN p.text END AS payload
       FROM messages m CROSS JOIN LATERAL (SELECT m.payload::text AS text) p
       WHERE m.id = $1`,
      [id, limit],
    );
    if (rows.length === 0) throw new NotFoundException(`message ${id} does not exist`);
    const [row] = rows;
    if (row.payload === null) {
      throw new UnprocessableEntityException(
        `the payload of message ${id} is ${row.payload_bytes} bytes, over the ${limit} bytes ` +
          'the API returns (2 x MAX_PAYLOAD_BYTES); read it with SQL',
      );
    }
    const meta: MessageDto = {
      id: Number(row.id),
      topic_id: row.topic_id,
      partition_key: row.partition_key,
      sequence: Number(row.sequence),
      created_at: row.created_at.toISOString(),
    };
    return `${JSON.stringify(meta).slice(0, -1)},"payload":${row.payload}}`;
  }
}
