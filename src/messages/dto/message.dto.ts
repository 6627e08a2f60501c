import { ApiProperty } from '@nestjs/swagger';

export class MessageDto {
  @ApiProperty({ example: 1 })
  id: number;

  @ApiProperty({ example: 1 })
  topic_id: number;

  @ApiProperty({ example: 'user-42' })
  partition_key: string;

  @ApiProperty({ example: 1, description: 'Gap-free position in its partition, in commit order' })
  sequence: number;

  @ApiProperty({ format: 'date-time' })
  created_at: string;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'order-1001-created',
    description: 'The key it was published with (unique per topic), or null',
  })
  idempotency_key: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'order.created',
    description: 'Its event type, or null',
  })
  event_type: string | null;
}

export class MessageWithPayloadDto extends MessageDto {
  @ApiProperty({
    description: 'The payload exactly as stored (PostgreSQL jsonb), every digit of every number',
    example: { event: 'order.created', order_id: 1001 },
  })
  payload: unknown;
}

export class PublishedBatchDto {
  @ApiProperty({
    type: [MessageDto],
    description:
      'One message per item, in input order; for an item whose idempotency key the topic already ' +
      'had (or an earlier item of the batch), the original message',
  })
  messages: MessageDto[];
}
