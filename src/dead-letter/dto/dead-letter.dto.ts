import { ApiProperty } from '@nestjs/swagger';
import { DeliveryDto } from '../../deliveries/dto/delivery.dto.js';

export class DeadLetterMessageDto {
  @ApiProperty() id: number;
  @ApiProperty() topic_id: number;
  @ApiProperty() partition_key: string;
  @ApiProperty() sequence: number;
  @ApiProperty({ description: 'The stored JSON payload' }) payload: unknown;
  @ApiProperty({ format: 'date-time' }) created_at: string;
}

export class DeadLetterDto extends DeliveryDto {
  @ApiProperty({ type: DeadLetterMessageDto })
  message: DeadLetterMessageDto;
}

export class DeadLetterCountDto {
  @ApiProperty({ example: 3 })
  count: number;
}
