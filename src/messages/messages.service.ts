import { Injectable, NotFoundException, PayloadTooLargeException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config.js';
import { translatePgError } from '../database/pg-errors.js';
import { MessageDto } from './dto/message.dto.js';

@Injectable()
export class MessagesService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly config: AppConfig,
  ) {}

  /**
   * One INSERT, exactly what a SQL producer writes: the trigger assigns the sequence and fans
   * out the deliveries, so there is one publish path.
   */
  async publish(topicName: string, partitionKey: string, payload: unknown): Promise<MessageDto> {
    const json = JSON.stringify(payload);
    const size = Buffer.byteLength(json);
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
        [topicName, partitionKey, json],
      );
      if (rows.length === 0) throw new NotFoundException(`topic "${topicName}" does not exist`);
      const [row] = rows;
      return {
        id: Number(row.id),
        topic_id: row.topic_id,
        partition_key: partitionKey,
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
}
