import { Injectable, PayloadTooLargeException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config.js';
import { translatePgError } from '../database/pg-errors.js';
import { TopicsService } from '../topics/topics.service.js';
import { MessageDto } from './dto/message.dto.js';

@Injectable()
export class MessagesService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly topics: TopicsService,
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
    const topic = await this.topics.getByName(topicName);
    try {
      const [row] = await this.db.query<{ id: string; sequence: string; created_at: Date }[]>(
        `INSERT INTO messages (topic_id, partition_key, payload)
         VALUES ($1, $2, $3::jsonb)
         RETURNING id, sequence, created_at`,
        [topic.id, partitionKey, json],
      );
      return {
        id: Number(row.id),
        topic_id: topic.id,
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
