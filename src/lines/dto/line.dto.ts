import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { PageLimit } from '../../common/pagination.dto.js';
import { PARTITION_KEY_PATTERN } from '../../database/entities/message.entity.js';
import { LINE_STATES } from '../lines.sql.js';
import type { LineState } from '../lines.sql.js';

/** What a partition key may be (the messages table's check). */
export const PARTITION_KEY = new RegExp(PARTITION_KEY_PATTERN);

/** One line: a (webhook, partition) and where it stands. */
export class LineDto {
  @ApiProperty({ example: 'user-42' })
  partition_key: string;

  @ApiProperty({
    type: Number,
    nullable: true,
    example: 17,
    description: 'The sequence the line sends next; null when idle',
  })
  head_sequence: number | null;

  @ApiProperty({ example: 20, description: 'The highest sequence fanned out to this webhook' })
  tail_sequence: number;

  @ApiProperty({ example: 4, description: 'Sequences from the head to the tail' })
  pending: number;

  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'When the head was published: how far behind the line is; null when idle',
  })
  oldest_pending_at: string | null;

  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'When the head may be tried next (while in flight: when the lease ends)',
  })
  next_attempt_at: string | null;

  @ApiProperty({ enum: LINE_STATES, example: 'retrying' })
  state: LineState;
}

export class ListLinesDto {
  @ApiPropertyOptional({ enum: LINE_STATES, description: 'Only lines in this state' })
  @IsOptional()
  @IsIn(LINE_STATES)
  state?: LineState;

  @ApiPropertyOptional({
    enum: ['partition_key', 'lag'],
    default: 'partition_key',
    description: 'lag: the most-behind lines first (oldest pending message first), idle last',
  })
  @IsOptional()
  @IsIn(['partition_key', 'lag'])
  order: 'partition_key' | 'lag' = 'partition_key';

  @PageLimit()
  limit: number = 100;

  @ApiPropertyOptional({
    example: 'user-42',
    description: 'With order=partition_key: only lines with a partition key after this one',
  })
  @IsOptional()
  @IsString()
  @Matches(PARTITION_KEY, { message: 'after must be a partition key (1-255 printable ASCII)' })
  after?: string;
}
