import { ApiProperty } from '@nestjs/swagger';
import { ON_EXHAUSTED, Webhook, WEBHOOK_STATUSES } from '../../database/entities/webhook.entity.js';
import type { OnExhausted, WebhookStatus } from '../../database/entities/webhook.entity.js';
import { EXAMPLE_SECRET } from '../webhook-secret.js';

export class WebhookDto {
  @ApiProperty({ example: 1 })
  id: number;

  @ApiProperty({ example: 1 })
  topic_id: number;

  @ApiProperty({ example: 'https://example.com/hooks/orders' })
  url: string;

  @ApiProperty({ format: 'date-time' })
  created_at: string;

  @ApiProperty({
    enum: WEBHOOK_STATUSES,
    example: 'active',
    description:
      'paused or disabled: no new attempt starts; messages still fan out to it and wait. ' +
      'A worker disables it on 410 Gone or after WEBHOOK_DISABLE_AFTER_SECONDS of failures only.',
  })
  status: WebhookStatus;

  @ApiProperty({
    type: String,
    nullable: true,
    enum: ['gone', 'failing', 'refused'],
    example: null,
    description:
      'Why a worker disabled it: gone (410), failing, or refused (the address policy refused its ' +
      'address; disabled_detail says which and why)',
  })
  disabled_reason: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: null,
    description: 'What the worker said when it disabled the webhook',
  })
  disabled_detail: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: null })
  disabled_at: string | null;

  @ApiProperty({
    enum: ON_EXHAUSTED,
    example: 'dead_letter',
    description:
      'After MAX_RETRIES the head is dead-lettered and its line moves on (dead_letter) or stops ' +
      'there, blocked, until it is redriven or skipped (block)',
  })
  on_exhausted: OnExhausted;

  // The per-webhook settings (null = the global setting).

  @ApiProperty({
    type: [String],
    example: ['authorization'],
    description: 'The names of its static headers; their values are write-only',
  })
  header_names: string[];

  @ApiProperty({ type: Number, nullable: true, example: null })
  max_in_flight: number | null;

  @ApiProperty({ type: Number, nullable: true, example: null })
  rate_limit_per_second: number | null;

  @ApiProperty({ type: Number, nullable: true, example: null, description: 'null: MAX_RETRIES' })
  max_retries: number | null;

  @ApiProperty({
    type: Number,
    nullable: true,
    example: null,
    description: 'null: BACKOFF_FACTOR',
  })
  backoff_factor: number | null;

  @ApiProperty({
    type: [String],
    nullable: true,
    example: ['order.*'],
    description: 'The event types it gets (exact types and prefix.* entries); null = every message',
  })
  event_types: string[] | null;
  // --- end of routing ---
}

export class CreatedWebhookDto extends WebhookDto {
  @ApiProperty({ description: 'The signing secret; also at GET /webhooks/{id}/secret' })
  secret: string;
}

export class WebhookSecretDto {
  @ApiProperty({ example: EXAMPLE_SECRET })
  secret: string;
}

export function toWebhookJson(webhook: Webhook): WebhookDto {
  return {
    id: webhook.id,
    topic_id: webhook.topicId,
    url: webhook.url,
    created_at: webhook.createdAt.toISOString(),
    status: webhook.status,
    disabled_reason: webhook.disabledReason,
    disabled_at: webhook.disabledAt?.toISOString() ?? null,
    on_exhausted: webhook.onExhausted,
    disabled_detail: webhook.disabledDetail,
    header_names: Object.keys(webhook.headers ?? {}),
    max_in_flight: webhook.maxInFlight,
    rate_limit_per_second: webhook.rateLimitPerSecond,
    max_retries: webhook.maxRetries,
    backoff_factor: webhook.backoffFactor,
    event_types: webhook.eventTypes,
  };
}
