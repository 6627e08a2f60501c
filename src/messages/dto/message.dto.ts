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
}

export class MessageWithPayloadDto extends MessageDto {
  @ApiProperty({
    description: 'The payload exactly as stored (PostgreSQL jsonb), every digit of every number',
    example: { event: 'order.created', order_id: 1001 },
  })
  payload: unknown;
}
