import { ApiProperty } from '@nestjs/swagger';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';

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
      '(else 413), nested at most 63 levels, no \\u0000 in strings (else 400).',
    example: { event: 'order.created', order_id: 1001 },
  })
  payload: unknown;
}
