import {
  Check,
  Column,
  CreateDateColumn,
  DeleteDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
} from 'typeorm';
import { EVENT_TYPES_CHECK } from '../migrations/1795633464700-EventRouting.js';
import { Topic } from './topic.entity.js';

export const WEBHOOK_STATUSES = ['active', 'paused', 'disabled'] as const;
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number];
export const ON_EXHAUSTED = ['dead_letter', 'block'] as const;
export type OnExhausted = (typeof ON_EXHAUSTED)[number];

@Entity('webhooks')
@Check('webhooks_url_check', 'char_length(url) <= 2048')
@Check('webhooks_status_check', "status IN ('active', 'paused', 'disabled')")
@Check('webhooks_on_exhausted_check', "on_exhausted IN ('dead_letter', 'block')")
@Check('webhooks_event_types_check', EVENT_TYPES_CHECK)
// The per-webhook settings' checks
@Check('webhooks_max_in_flight_check', 'max_in_flight BETWEEN 1 AND 10000')
@Check(
  'webhooks_rate_limit_check',
  'rate_limit_per_second >= 0.01 AND rate_limit_per_second <= 10000',
)
@Check('webhooks_max_retries_check', 'max_retries BETWEEN 1 AND 1000')
@Check('webhooks_backoff_factor_check', 'backoff_factor >= 0.001 AND backoff_factor <= 1000')
@Check('webhooks_headers_check', "jsonb_typeof(headers) = 'object'")
@Index('webhooks_deleted_idx', ['id'], { where: 'deleted_at IS NOT NULL' })
export class Webhook {
  @PrimaryGeneratedColumn('identity', {
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'webhooks_pkey',
  })
  id: number;

  @Index('webhooks_topic_id_idx')
  @Column('integer', { name: 'topic_id' })
  topicId: number;

  @ManyToOne(() => Topic, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'topic_id', foreignKeyConstraintName: 'webhooks_topic_id_fkey' })
  topic?: Topic;

  @Column('text')
  url: string;

  @Column('text')
  secret: string;

  /** The secret before the last rotation; it keeps signing until previousSecretExpiresAt. */
  @Column('text', { name: 'previous_secret', nullable: true })
  previousSecret: string | null;

  @Column('timestamptz', { name: 'previous_secret_expires_at', nullable: true })
  previousSecretExpiresAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  /** DESIGN §7: paused or disabled, nothing new is sent; deliveries keep fanning out and wait. */
  @Column('text', { default: 'active' })
  status: WebhookStatus;

  /** Why the worker disabled it: `gone` (410) or `failing` (WEBHOOK_DISABLE_AFTER_SECONDS). */
  @Column('text', { name: 'disabled_reason', nullable: true })
  disabledReason: string | null;

  @Column('timestamptz', { name: 'disabled_at', nullable: true })
  disabledAt: Date | null;

  /** What a head that used up its retries does: dead-lettered, and the line moves on or stops. */
  @Column('text', { name: 'on_exhausted', default: 'dead_letter' })
  onExhausted: OnExhausted;

  /** When the current run of failed attempts began; NULL after a success. */
  @Column('timestamptz', { name: 'failing_since', nullable: true })
  failingSince: Date | null;

  // The per-webhook settings (DESIGN §10); NULL = the global setting.

  /** Static headers sent on every attempt, lower-case name → value. Values are never shown. */
  @Column('jsonb', { nullable: true })
  headers: Record<string, string> | null;

  /** At most this many attempts at once, across all workers (webhook_limits). */
  @Column('integer', { name: 'max_in_flight', nullable: true })
  maxInFlight: number | null;

  /** Attempts started per second, across all workers (webhook_limits' token bucket). */
  @Column('double precision', { name: 'rate_limit_per_second', nullable: true })
  rateLimitPerSecond: number | null;

  /** Overrides MAX_RETRIES. */
  @Column('integer', { name: 'max_retries', nullable: true })
  maxRetries: number | null;

  /** Overrides BACKOFF_FACTOR. */
  @Column('double precision', { name: 'backoff_factor', nullable: true })
  backoffFactor: number | null;

  /** What the worker said when it disabled the webhook (e.g. the refused address). */
  @Column('text', { name: 'disabled_detail', nullable: true })
  disabledDetail: string | null;

  // ---- end of manners ----

  /**
   * Set by DELETE /webhooks/{id}: from then on the trigger fans nothing out to it, workers claim
   * none of its lines, and the repository's finds skip it (a soft-delete column); the workers'
   * maintenance then purges its lines, deliveries and row (WebhookPurge).
   */
  /**
   * The event types it gets: exact types and `prefix.*` entries; NULL = every message. Read by
   * the fan-out trigger; a change applies to messages published after it.
   */
  @Column('text', { name: 'event_types', array: true, nullable: true })
  eventTypes: string[] | null;
  // --- end of routing ---

  @DeleteDateColumn({ name: 'deleted_at', type: 'timestamptz' })
  deletedAt: Date | null;
}
