import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';

export const MAX_PAGE_SIZE = 1000;
/** The largest PostgreSQL integer: topic and webhook ids. */
export const INT4_MAX = 2147483647;

/**
 * The `after` cursor, up to the largest id of the list's id column. Every decorator is applied
 * again where a subclass narrows it: class-validator drops a parent's validators of a property
 * that the subclass validates too.
 */
const AfterId = (max: number) =>
  applyDecorators(
    ApiPropertyOptional({
      minimum: 0,
      maximum: max,
      description: 'Return only items with an id above this one',
    }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(0),
    Max(max),
  );

/** The `limit` of every list (DESIGN §5): 1 to MAX_PAGE_SIZE, 100 when not given. */
export const PageLimit = () =>
  applyDecorators(
    ApiPropertyOptional({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 100 }),
    IsOptional(),
    Type(() => Number),
    IsInt(),
    Min(1),
    Max(MAX_PAGE_SIZE),
  );

/** `limit` and `after` of every list (DESIGN §5): ascending ids, after an exclusive id. */
export class PaginationDto {
  @PageLimit()
  limit: number = 100;

  @AfterId(Number.MAX_SAFE_INTEGER)
  after: number = 0;
}

/**
 * Paging of a list of integer ids (topics, webhooks): `after` must fit the column, or PostgreSQL
 * refuses the comparison (a 500 before this bound).
 */
export class IntIdPaginationDto extends PaginationDto {
  @AfterId(INT4_MAX)
  override after: number = 0;
}

export const LIST_ORDERS = ['asc', 'desc'] as const;
export type ListOrder = (typeof LIST_ORDERS)[number];

/**
 * Paging of a list that can run newest first: `order=desc` gives descending ids, and `after`
 * then means older than that id (the Link header's next page works either way).
 */
export class OrderedPaginationDto extends PaginationDto {
  @ApiPropertyOptional({
    enum: LIST_ORDERS,
    default: 'asc',
    description: 'asc: oldest first (ascending ids); desc: newest first, `after` then means older',
  })
  @IsOptional()
  @IsIn(LIST_ORDERS)
  order: ListOrder = 'asc';
}
