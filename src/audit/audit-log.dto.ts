import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, Length } from 'class-validator';
import { LIST_ORDERS, OrderedPaginationDto } from '../common/pagination.dto.js';
import type { ListOrder } from '../common/pagination.dto.js';
import { AuditEntry } from '../database/entities/audit-entry.entity.js';

export class ListAuditLogDto extends OrderedPaginationDto {
  @ApiPropertyOptional({
    enum: LIST_ORDERS,
    default: 'desc',
    description: 'desc (the default here): newest first, `after` then means older',
  })
  @IsOptional()
  @IsIn(LIST_ORDERS)
  override order: ListOrder = 'desc';

  @ApiPropertyOptional({
    example: 'webhook:3',
    description: 'Only actions on this target: webhook:<id>, topic:<id> or dead-letter',
  })
  @IsOptional()
  @Length(1, 100)
  target?: string;
}

export class AuditEntryDto {
  @ApiProperty() id: number;
  @ApiProperty({ format: 'date-time' }) at: string;
  @ApiProperty({
    example: 'alice',
    description: "The API key's name (API_KEYS name:key), or local without API keys",
  })
  actor: string;
  @ApiProperty({ example: 'webhook.update' }) action: string;
  @ApiProperty({ example: 'webhook:3' }) target: string;
  @ApiProperty({ example: { status: 'paused' }, description: 'What the action was given' })
  parameters: Record<string, unknown>;
}

export function toAuditEntryJson(entry: AuditEntry): AuditEntryDto {
  return {
    id: entry.id,
    at: entry.at.toISOString(),
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    parameters: entry.parameters,
  };
}
