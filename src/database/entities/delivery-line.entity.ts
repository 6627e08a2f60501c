import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';
import { Webhook } from './webhook.entity.js';

/**
 * One row per (webhook, partition): the unit of ordering and of claiming. Workers claim lines,
 * never deliveries, so finding the head of a line is a primary-key lookup whatever the backlog.
 *
 * - head_sequence: the sequence of the line's oldest unfinished delivery (tail_sequence + 1 when
 *   the line is idle).
 * - tail_sequence: the highest sequence fanned out to this webhook for this partition.
 * - next_attempt_at: when the head may be claimed. NULL while idle. While leased it holds the
 *   lease's expiry, so "claimable" is one condition on one indexed column: next_attempt_at <= now().
 * - lease_token: the fence. Every write after a claim must match it.
 * - blocked: on_exhausted = block stopped the line at its dead head (not due) until a redrive or
 *   a skip (DESIGN §7).
 * - rewind_to: a redrive or replay found the line leased; its next claim moves the head back here.
 * - head_created_at: when the head was published (NULL when idle), for the lines API's lag order.
 * - limited: the lease counts against its webhook's max_in_flight (delivery_lines_limited_leased_idx
 *   holds exactly the leased ones, so the claim counts a webhook's in-flight attempts cheaply).
 */
@Entity('delivery_lines')
@Index('delivery_lines_due_idx', ['nextAttemptAt'], { where: 'next_attempt_at IS NOT NULL' })
@Index('delivery_lines_lag_idx', ['webhookId', 'headCreatedAt', 'partitionKey'])
@Index('delivery_lines_limited_leased_idx', ['webhookId'], {
  where: 'lease_token IS NOT NULL AND limited',
})
export class DeliveryLine {
  @PrimaryColumn('integer', { name: 'webhook_id', primaryKeyConstraintName: 'delivery_lines_pkey' })
  webhookId: number;

  @ManyToOne(() => Webhook, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'webhook_id', foreignKeyConstraintName: 'delivery_lines_webhook_id_fkey' })
  webhook?: Webhook;

  @PrimaryColumn('text', { name: 'partition_key', primaryKeyConstraintName: 'delivery_lines_pkey' })
  partitionKey: string;

  @Column('integer', { name: 'topic_id' })
  topicId: number;

  @Column('bigint', { name: 'head_sequence', transformer: bigintToNumber })
  headSequence: number;

  @Column('bigint', { name: 'tail_sequence', transformer: bigintToNumber })
  tailSequence: number;

  @Column('timestamptz', { name: 'next_attempt_at', nullable: true })
  nextAttemptAt: Date | null;

  @Column('uuid', { name: 'lease_token', nullable: true })
  leaseToken: string | null;

  @Column('boolean', { default: false })
  blocked: boolean;

  @Column('bigint', { name: 'rewind_to', nullable: true, transformer: bigintToNumber })
  rewindTo: number | null;

  @Column('timestamptz', { name: 'head_created_at', nullable: true })
  headCreatedAt: Date | null;

  /** The lease is counted against the webhook's max_in_flight (set by the claim). */
  @Column('boolean', { default: false })
  limited: boolean;
}
