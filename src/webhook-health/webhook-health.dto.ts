import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, IsInt, IsOptional, Max, Min } from 'class-validator';
import { INT4_MAX, IntIdPaginationDto, MAX_PAGE_SIZE } from '../common/pagination.dto.js';
import { ON_EXHAUSTED, WEBHOOK_STATUSES } from '../database/entities/webhook.entity.js';
import type { OnExhausted, WebhookStatus } from '../database/entities/webhook.entity.js';

export class ListWebhookHealthDto extends IntIdPaginationDto {
  @ApiPropertyOptional({
    type: String,
    example: '1,2,3',
    description: `Only the webhooks of these topics (comma-separated ids, up to ${MAX_PAGE_SIZE})`,
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string'
      ? value.split(',').map((id) => (/^\d+$/.test(id) ? Number(id) : NaN))
      : value,
  )
  @ArrayMaxSize(MAX_PAGE_SIZE)
  @IsInt({ each: true, message: 'topic_ids must be comma-separated topic ids' })
  @Min(1, { each: true })
  @Max(INT4_MAX, { each: true })
  topic_ids?: number[];
}

export class WebhookHealthDto {
  @ApiProperty({ description: 'The webhook id' }) id: number;
  @ApiProperty() topic_id: number;
  @ApiProperty() topic: string;
  @ApiProperty() url: string;
  @ApiProperty({ enum: WEBHOOK_STATUSES }) status: WebhookStatus;
  @ApiProperty({ type: String, nullable: true }) disabled_reason: string | null;
  @ApiProperty({ enum: ON_EXHAUSTED }) on_exhausted: OnExhausted;
  @ApiProperty({ description: 'Deliveries waiting (in flight and retrying included)' })
  pending: number;
  @ApiProperty({ description: 'Age of the oldest pending delivery; 0 when none' })
  oldest_pending_age_seconds: number;
  @ApiProperty({ description: 'Dead deliveries still stored' }) dead: number;
  @ApiProperty({ description: 'Lines stopped at a dead head (on_exhausted = block)' })
  blocked_lines: number;
  @ApiProperty({
    type: String,
    nullable: true,
    description: "The most-behind line's head's last error, else the newest dead delivery's",
  })
  last_error: string | null;
  @ApiProperty({ type: Number, nullable: true }) last_status_code: number | null;
  @ApiProperty({ type: Number, nullable: true, description: 'The delivery that error is from' })
  last_error_delivery_id: number | null;
}

export interface WebhookHealthRow {
  webhook_id: number;
  topic_id: number;
  topic: string;
  url: string;
  status: WebhookStatus;
  disabled_reason: string | null;
  on_exhausted: OnExhausted;
  pending: number;
  oldest_pending_age_seconds: number;
  dead: number;
  blocked_lines: number;
  last_error: string | null;
  last_status_code: number | null;
  last_error_delivery_id: string | null;
}

export function toWebhookHealthJson(row: WebhookHealthRow): WebhookHealthDto {
  return {
    id: row.webhook_id,
    topic_id: row.topic_id,
    topic: row.topic,
    url: row.url,
    status: row.status,
    disabled_reason: row.disabled_reason,
    on_exhausted: row.on_exhausted,
    pending: row.pending,
    oldest_pending_age_seconds: Math.round(row.oldest_pending_age_seconds),
    dead: row.dead,
    blocked_lines: row.blocked_lines,
    last_error: row.last_error,
    last_status_code: row.last_status_code,
    last_error_delivery_id:
      row.last_error_delivery_id === null ? null : Number(row.last_error_delivery_id),
  };
}
