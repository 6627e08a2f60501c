import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';
import { EVENT_TYPE_PATTERN } from '../../database/migrations/1795633464600-PublishByName.js';
import { MAX_BATCH_MESSAGES, MAX_IDEMPOTENCY_KEY_LENGTH } from '../publish-request.js';

/**
 * The body of a publish, for the OpenAPI document only: the route reads its body itself
 * (readPublishRequest), so the payload never passes through class-transformer.
 */
export class PublishMessageDto {
  @ApiProperty({
    description:
      'Messages with the same key are delivered in order. 1-255 printable ASCII characters, no spaces.',
    pattern: PARTITION_KEY_PATTERN,
    minLength: 1,
    maxLength: 255,
    example: 'user-42',
  })
  partition_key: string;

  @ApiProperty({
    description:
      'Any JSON value, stored exactly as sent (numbers keep every digit) and POSTed as the ' +
      'request body to every webhook of the topic. At most MAX_PAYLOAD_BYTES (default 1 MiB) ' +
      '(else 413), nested at most 63 levels, no NUL character (U+0000) in strings (else 400).',
    example: { event: 'order.created', order_id: 1001 },
  })
  payload: unknown;

  @ApiPropertyOptional({
    description:
      'Makes the publish safe to retry: unique per topic, enforced by the database. A publish ' +
      'with a key the topic already has writes nothing and answers 200 with the original ' +
      'message (same id and sequence), whatever its partition_key and payload. ' +
      `1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters, no NUL character (U+0000).`,
    minLength: 1,
    maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
    example: 'order-1001-created',
  })
  idempotency_key?: string;

  @ApiPropertyOptional({
    description:
      'What happened, e.g. order.created: the message goes to the webhooks without ' +
      'event_types and to those whose event_types match it (an exact entry, or a prefix entry ' +
      'such as order.*); without one, only to webhooks without event_types. Sent as the ' +
      'webhook-event-type header. 1-128 characters of A-Z a-z 0-9 _ . : / -',
    pattern: EVENT_TYPE_PATTERN,
    minLength: 1,
    maxLength: 128,
    example: 'order.created',
  })
  event_type?: string;
}

/** The body of a batch publish, for the OpenAPI document only (readBatchRequest reads it). */
export class PublishBatchDto {
  @ApiProperty({
    type: [PublishMessageDto],
    minItems: 1,
    maxItems: MAX_BATCH_MESSAGES,
    description:
      `1 to ${MAX_BATCH_MESSAGES} messages, published in one transaction: all or none. The ` +
      'request body may have up to MAX_BATCH_BODY_BYTES (default 8 MiB); each payload up to ' +
      'MAX_PAYLOAD_BYTES.',
    example: [
      {
        partition_key: 'user-42',
        event_type: 'order.created',
        payload: { event: 'order.created', order_id: 1001 },
      },
      {
        partition_key: 'user-42',
        event_type: 'order.paid',
        payload: { event: 'order.paid', order_id: 1001 },
        idempotency_key: 'order-1001-paid',
      },
    ],
  })
  messages: PublishMessageDto[];
}
