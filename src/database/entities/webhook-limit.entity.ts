import { Column, Entity, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Webhook } from './webhook.entity.js';

/**
 * The state of a webhook's limits across all workers (DESIGN §10): one row per webhook with
 * max_in_flight or rate_limit_per_second, written by the API with the webhook's settings and
 * locked by the claim (migration WebhookManners says how).
 *
 * - tokens, refilled_at: the token bucket of rate_limit_per_second (pgwq_bucket_tokens).
 * - tokens_at: no token before then (a hint: the claim's walk passes the webhook over).
 * - full_until: a claim found max_in_flight attempts running (a hint, cleared by a release).
 */
@Entity('webhook_limits')
export class WebhookLimit {
  @PrimaryColumn('integer', { name: 'webhook_id', primaryKeyConstraintName: 'webhook_limits_pkey' })
  webhookId: number;

  @ManyToOne(() => Webhook, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'webhook_id', foreignKeyConstraintName: 'webhook_limits_webhook_id_fkey' })
  webhook?: Webhook;

  @Column('double precision')
  tokens: number;

  @Column('timestamptz', { name: 'refilled_at', default: () => 'clock_timestamp()' })
  refilledAt: Date;

  @Column('timestamptz', { name: 'tokens_at', nullable: true })
  tokensAt: Date | null;

  @Column('timestamptz', { name: 'full_until', nullable: true })
  fullUntil: Date | null;
}
