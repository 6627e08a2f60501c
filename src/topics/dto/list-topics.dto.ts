import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, Matches } from 'class-validator';
import { IntIdPaginationDto } from '../../common/pagination.dto.js';

/** GET /topics: ascending ids, paged; `name_prefix` narrows to names that start with it. */
export class ListTopicsDto extends IntIdPaginationDto {
  @ApiPropertyOptional({
    example: 'acme',
    description:
      'Only topics whose name starts with this (case-sensitive), still in id order: a ' +
      'typeahead over any number of topics (one index range scan)',
  })
  @IsOptional()
  @Matches(/^[A-Za-z0-9._-]{1,200}$/, {
    message: 'name_prefix must be 1-200 letters, digits, ".", "_" or "-"',
  })
  name_prefix?: string;
}
