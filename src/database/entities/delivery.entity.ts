import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  Unique,
} from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';
import { Message } from './message.entity.js';
import { Webhook } from './webhook.entity.js';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** One message for one webhook. partition_key and sequence are copied from the message. */
@Entity('deliveries')
@Unique('deliveries_line_sequence_key', ['webhookId', 'partitionKey', 'sequence'])
@Index('deliveries_webhook_id_idx', ['webhookId', 'id'])
// No index reads a column that marking a delivery delivered changes (status, attempts,
// next_attempt_at, last_status_code, last_error, delivered_at, delivered_*): that update stays heap-only
// (migration HotRecords1795633464900). The dead ones are keyed on dead_at, set exactly when dead.
@Index('deliveries_dead_letter_idx', ['id'], { where: 'dead_at IS NOT NULL' })
@Index('deliveries_webhook_dead_letter_idx', ['webhookId', 'id'], { where: 'dead_at IS NOT NULL' })
@Index('deliveries_dead_since_idx', ['deadAt'], { where: 'dead_at IS NOT NULL' })
@Check('deliveries_status_check', "status IN ('pending', 'delivered', 'dead')")
@Check('deliveries_dead_at_check', "(status = 'dead') = (dead_at IS NOT NULL)")
export class Delivery {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'deliveries_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  @Index('deliveries_message_id_idx')
  @Column('bigint', { name: 'message_id', transformer: bigintToNumber })
  messageId: number;

  @ManyToOne(() => Message, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'message_id', foreignKeyConstraintName: 'deliveries_message_id_fkey' })
  message?: Message;

  @Column('integer', { name: 'webhook_id' })
  webhookId: number;

  @ManyToOne(() => Webhook, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'webhook_id', foreignKeyConstraintName: 'deliveries_webhook_id_fkey' })
  webhook?: Webhook;

  @Column('integer', { name: 'topic_id' })
  topicId: number;

  @Column('text', { name: 'partition_key' })
  partitionKey: string;

  @Column('bigint', { transformer: bigintToNumber })
  sequence: number;

  /**
   * The sequence of the delivery before this one on its webhook line (webhook, partition),
   * whatever its status; NULL for a line's first. Set by the fan-out; sent as
   * webhook-previous-sequence.
   */
  @Column('bigint', { name: 'previous_sequence', nullable: true, transformer: bigintToNumber })
  previousSequence: number | null;

  @Column('text', { default: 'pending' })
  status: DeliveryStatus;

  @Column('integer', { default: 0 })
  attempts: number;

  /** When the head's current run of throttling answers (429, 503 + Retry-After) began. */
  @Column('timestamptz', { name: 'throttled_since', nullable: true })
  throttledSince: Date | null;

  /** Attempts that were throttling answers: in `attempts`, not in the retry budget. */
  @Column('integer', { name: 'throttled_attempts', default: 0 })
  throttledAttempts: number;

  @Column('timestamptz', { name: 'next_attempt_at', nullable: true })
  nextAttemptAt: Date | null;

  @Column('integer', { name: 'last_status_code', nullable: true })
  lastStatusCode: number | null;

  @Column('text', { name: 'last_error', nullable: true })
  lastError: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column('timestamptz', { name: 'delivered_at', nullable: true })
  deliveredAt: Date | null;

  @Column('timestamptz', { name: 'dead_at', nullable: true })
  deadAt: Date | null;

  /**
   * The successful attempt of a delivered delivery, kept here rather than in logged_attempts
   * (its number, status code and error are attempts, last_status_code and last_error). Its id is
   * from logged_attempts' sequence; a trigger moves it there when the delivery is made pending
   * again.
   */
  @Column('bigint', { name: 'delivered_attempt_id', nullable: true, transformer: bigintToNumber })
  deliveredAttemptId: number | null;

  @Column('timestamptz', { name: 'delivered_started_at', nullable: true })
  deliveredStartedAt: Date | null;

  @Column('integer', { name: 'delivered_duration_ms', nullable: true })
  deliveredDurationMs: number | null;

  @Column('text', { name: 'delivered_response_body', nullable: true })
  deliveredResponseBody: string | null;
}
