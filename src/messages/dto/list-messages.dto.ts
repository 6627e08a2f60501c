import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Length, Matches, Max, Min } from 'class-validator';
import { INT4_MAX, OrderedPaginationDto } from '../../common/pagination.dto.js';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';
import { TOPIC_NAME_PATTERN } from '../../database/entities/topic.entity.js';
import { EVENT_TYPE_PATTERN } from '../../database/migrations/1795633464600-PublishByName.js';

/**
 * The filters of a topic's messages (the topic by id or by name, exactly one). Each is one
 * equality on an indexed column; a new one is one more property here and one more line in
 * MessageSearch.list.
 */
export class ListMessagesDto extends OrderedPaginationDto {
  @ApiPropertyOptional({ description: 'The topic by id (or give `topic`)', example: 1 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(INT4_MAX)
  topic_id?: number;

  @ApiPropertyOptional({ description: 'The topic by name (or give `topic_id`)', example: 'orders' })
  @IsOptional()
  @Matches(new RegExp(TOPIC_NAME_PATTERN), { message: 'topic must be a topic name' })
  topic?: string;

  @ApiPropertyOptional({
    example: 'user-42',
    description: "Only this partition's messages, in sequence order; `after` is still a message id",
  })
  @IsOptional()
  @Matches(new RegExp(PARTITION_KEY_PATTERN), {
    message: 'partition_key must be 1-255 printable ASCII characters without spaces',
  })
  partition_key?: string;

  @ApiPropertyOptional({
    example: 'order-1001-created',
    description: 'The message published with this key',
  })
  @IsOptional()
  @Length(1, 255)
  idempotency_key?: string;

  @ApiPropertyOptional({
    example: 'order.created',
    description: 'Only messages of this event type (exact)',
  })
  @IsOptional()
  @Matches(new RegExp(EVENT_TYPE_PATTERN), {
    message: 'event_type must be 1-128 characters of A-Z a-z 0-9 _ . : / -',
  })
  event_type?: string;
}
