import { ApiProperty } from '@nestjs/swagger';
import { DELIVERY_STATUSES } from '../../database/entities/delivery.entity.js';
import type { DeliveryStatus } from '../../database/entities/delivery.entity.js';
import { DeliveryAttempt } from '../../database/entities/delivery-attempt.entity.js';
import type { DeliveryWithType } from '../event-types.js';

export class DeliveryDto {
  @ApiProperty() id: number;
  @ApiProperty() message_id: number;
  @ApiProperty() webhook_id: number;
  @ApiProperty() topic_id: number;
  @ApiProperty() partition_key: string;
  @ApiProperty() sequence: number;
  @ApiProperty({
    nullable: true,
    type: Number,
    description:
      "The sequence of the delivery before this one on the webhook's line (webhook, " +
      'partition), whatever its status; null for the first. Sent as webhook-previous-sequence',
  })
  previous_sequence: number | null;
  @ApiProperty({
    nullable: true,
    type: String,
    example: 'order.created',
    description: "Its message's event type, or null",
  })
  event_type: string | null;
  @ApiProperty({ enum: DELIVERY_STATUSES }) status: DeliveryStatus;
  @ApiProperty({ description: 'Attempts made so far' }) attempts: number;
  @ApiProperty({ format: 'date-time', nullable: true, type: String })
  next_attempt_at: string | null;
  @ApiProperty({ nullable: true, type: Number }) last_status_code: number | null;
  @ApiProperty({ nullable: true, type: String }) last_error: string | null;
  @ApiProperty({ format: 'date-time' }) created_at: string;
  @ApiProperty({ format: 'date-time', nullable: true, type: String })
  delivered_at: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String })
  dead_at: string | null;
}

export class DeliveryAttemptDto {
  @ApiProperty() id: number;
  @ApiProperty() delivery_id: number;
  @ApiProperty({ description: '1 for the first attempt' }) attempt: number;
  @ApiProperty({ format: 'date-time' }) started_at: string;
  @ApiProperty() duration_ms: number;
  @ApiProperty({ nullable: true, type: Number }) status_code: number | null;
  @ApiProperty({ nullable: true, type: String }) error: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'The first bytes of the response' })
  response_body: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toDeliveryJson(d: DeliveryWithType): DeliveryDto {
  return {
    id: d.id,
    message_id: d.messageId,
    webhook_id: d.webhookId,
    topic_id: d.topicId,
    partition_key: d.partitionKey,
    sequence: d.sequence,
    previous_sequence: d.previousSequence,
    event_type: d.eventType,
    status: d.status,
    attempts: d.attempts,
    next_attempt_at: iso(d.nextAttemptAt),
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    created_at: d.createdAt.toISOString(),
    delivered_at: iso(d.deliveredAt),
    dead_at: iso(d.deadAt),
  };
}

export function toDeliveryAttemptJson(a: DeliveryAttempt): DeliveryAttemptDto {
  return {
    id: a.id,
    delivery_id: a.deliveryId,
    attempt: a.attempt,
    started_at: a.startedAt.toISOString(),
    duration_ms: a.durationMs,
    status_code: a.statusCode,
    error: a.error,
    response_body: a.responseBody,
  };
}
