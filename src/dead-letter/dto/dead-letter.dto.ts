import { ApiProperty } from '@nestjs/swagger';

export class DeadLetterCountDto {
  @ApiProperty({ example: 3 })
  count: number;
}
