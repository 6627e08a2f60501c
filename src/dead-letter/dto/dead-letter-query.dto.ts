import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { INT4_MAX, PaginationDto } from '../../common/pagination.dto.js';

/** An optional integer-id filter in the query string (topic and webhook ids are int4). */
const OptionalIdFilter = () =>
  applyDecorators(
    ApiPropertyOptional({ minimum: 1, maximum: INT4_MAX }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(1),
    Max(INT4_MAX),
  );

export class DeadLetterFilterDto {
  @OptionalIdFilter()
  topic_id?: number;

  @OptionalIdFilter()
  webhook_id?: number;
}

/** Paging plus the filters. */
export class ListDeadLetterDto extends IntersectionType(PaginationDto, DeadLetterFilterDto) {}
