import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsISO8601,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
} from 'class-validator';
import { INT4_MAX, MAX_PAGE_SIZE } from '../../common/pagination.dto.js';
import { PARTITION_KEY } from '../../lines/dto/line.dto.js';

/** POST /dead-letter/redrive: which dead deliveries to send again; at least one filter. */
export class RedriveDto {
  @ApiPropertyOptional({ type: [Number], example: [12, 13], maxItems: MAX_PAGE_SIZE })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_PAGE_SIZE)
  @IsInt({ each: true })
  @Min(1, { each: true })
  @Max(Number.MAX_SAFE_INTEGER, { each: true })
  delivery_ids?: number[];

  @ApiPropertyOptional({ example: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(INT4_MAX)
  webhook_id?: number;

  @ApiPropertyOptional({ example: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(INT4_MAX)
  topic_id?: number;

  @ApiPropertyOptional({ example: 'user-42' })
  @IsOptional()
  @IsString()
  @Matches(PARTITION_KEY, { message: 'partition_key must be 1-255 printable ASCII characters' })
  partition_key?: string;

  @ApiPropertyOptional({
    example: '2026-11-21T18:00:00Z',
    format: 'date-time',
    description: 'Only deliveries dead-lettered at or after this time',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  since?: string;

  @ApiPropertyOptional({
    example: '2026-11-23T08:00:00Z',
    format: 'date-time',
    description: 'Only deliveries dead-lettered before this time',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  until?: string;
}

export class RedrivenDto {
  @ApiProperty({ example: 1250, description: 'Dead deliveries made pending again' })
  redriven: number;
}
