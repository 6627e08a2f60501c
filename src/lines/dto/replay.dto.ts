import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { PARTITION_KEY } from './line.dto.js';

/** POST /webhooks/{id}/replay: {partition_key, from_sequence} or {since}, never both. */
export class ReplayDto {
  @ApiPropertyOptional({ example: 'user-42', description: 'With from_sequence' })
  @IsOptional()
  @IsString()
  @Matches(PARTITION_KEY, { message: 'partition_key must be 1-255 printable ASCII characters' })
  partition_key?: string;

  @ApiPropertyOptional({ example: 1, minimum: 1, description: 'With partition_key' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  from_sequence?: number;

  @ApiPropertyOptional({
    example: '2026-11-24T00:00:00Z',
    format: 'date-time',
    description:
      'Instead of partition_key and from_sequence: every partition, from its first message published since then',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  since?: string;
}

export class ReplayedDto {
  @ApiProperty({ example: 42, description: 'Deliveries made pending again' })
  replayed: number;
}
