import {
  Check,
  Column,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  Unique,
} from 'typeorm';
import { EVENT_TYPE_PATTERN } from '../migrations/1795633464600-PublishByName.js';
import { bigintToNumber } from './bigint.transformer.js';
import { Topic } from './topic.entity.js';

/** Printable ASCII without spaces: it travels in the webhook-partition-key header. */
export const PARTITION_KEY_PATTERN = '^[\\x21-\\x7e]{1,255}$';

@Entity('messages')
@Unique('messages_partition_sequence_key', ['topicId', 'partitionKey', 'sequence'])
@Unique('messages_idempotency_key', ['topicId', 'idempotencyKey'])
@Index('messages_topic_id_idx', ['topicId', 'id'])
@Index('messages_topic_event_type_idx', ['topicId', 'eventType', 'id'], {
  where: 'event_type IS NOT NULL',
})
@Check('messages_partition_key_check', `partition_key ~ '${PARTITION_KEY_PATTERN}'`)
@Check('messages_event_type_check', `event_type ~ '${EVENT_TYPE_PATTERN}'`)
export class Message {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'messages_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  @Column('integer', { name: 'topic_id' })
  topicId: number;

  @ManyToOne(() => Topic, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'topic_id', foreignKeyConstraintName: 'messages_topic_id_fkey' })
  topic?: Topic;

  @Column('text', { name: 'partition_key' })
  partitionKey: string;

  @Column('jsonb')
  payload: unknown;

  /** Assigned by the trigger: gap-free per (topic, partition_key), in commit order. */
  @Column('bigint', { transformer: bigintToNumber })
  sequence: number;

  @Column('timestamptz', { name: 'created_at', default: () => 'now()' })
  createdAt: Date;

  /**
   * Unique per topic when set (NULL never conflicts), so a replay can be skipped with
   * INSERT … ON CONFLICT (topic_id, idempotency_key) DO NOTHING without a gap in the sequence.
   */
  @Column('text', { name: 'idempotency_key', nullable: true })
  idempotencyKey: string | null;

  /** What happened (`order.created`); set by pgwq_publish or an SQL producer, optional. */
  @Column('text', { name: 'event_type', nullable: true })
  eventType: string | null;
}
