import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, Matches } from 'class-validator';
import { OrderedPaginationDto } from '../../common/pagination.dto.js';
import { DELIVERY_STATUSES } from '../../database/entities/delivery.entity.js';
import type { DeliveryStatus } from '../../database/entities/delivery.entity.js';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';
import { EVENT_TYPE_PATTERN } from '../../database/migrations/1795633464600-PublishByName.js';

/**
 * The filters of a webhook's deliveries. Each is one equality on an indexed column; a new one is
 * one more property here and one more line in DeliveriesService.listByWebhook.
 */
export class ListDeliveriesDto extends OrderedPaginationDto {
  @ApiPropertyOptional({ enum: DELIVERY_STATUSES })
  @IsOptional()
  @IsIn(DELIVERY_STATUSES)
  status?: DeliveryStatus;

  @ApiPropertyOptional({
    example: 'user-42',
    description:
      "Only this partition's deliveries (the webhook's line), in sequence order; `after` is " +
      'still a delivery id',
  })
  @IsOptional()
  @Matches(new RegExp(PARTITION_KEY_PATTERN), {
    message: 'partition_key must be 1-255 printable ASCII characters without spaces',
  })
  partition_key?: string;

  @ApiPropertyOptional({
    example: 'order.created',
    description: 'Only deliveries whose message has this event type (exact)',
  })
  @IsOptional()
  @Matches(new RegExp(EVENT_TYPE_PATTERN), {
    message: 'event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / -',
  })
  event_type?: string;
}
