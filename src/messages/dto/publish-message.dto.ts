import { ApiProperty } from '@nestjs/swagger';
import { IsDefined, IsString, Matches } from 'class-validator';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';

export class PublishMessageDto {
  @ApiProperty({
    description:
      'Messages with the same key are delivered in order. 1-255 printable ASCII characters, no spaces.',
    pattern: PARTITION_KEY_PATTERN,
    minLength: 1,
    maxLength: 255,
    example: 'user-42',
  })
  @IsString()
  @Matches(new RegExp(PARTITION_KEY_PATTERN), {
    message: 'partition_key must be 1-255 printable ASCII characters without spaces',
  })
  partition_key: string;

  @ApiProperty({
    description:
      'Any JSON value; POSTed as the request body to every webhook of the topic. At most ' +
      'MAX_PAYLOAD_BYTES (default 1 MiB) as JSON (else 413), nested at most 64 levels, ' +
      'no \\u0000 in strings (else 400).',
    example: { event: 'order.created', order_id: 1001 },
  })
  @IsDefined({ message: 'payload is required' })
  payload: unknown;
}
