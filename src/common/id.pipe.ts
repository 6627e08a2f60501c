import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';
import { INT4_MAX } from './pagination.dto.js';

function parseId(value: string, max: number): number {
  if (!/^[0-9]{1,16}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new BadRequestException(
      `id must be a positive integer up to ${max} (got "${value.slice(0, 40)}")`,
    );
  }
  return Number(value);
}

/**
 * A path id of a topic or webhook (PostgreSQL integer): a positive decimal integer up to
 * 2147483647, nothing else ("1e3", "01x", "-1" and 99999999999 are 400s, never a database error).
 */
@Injectable()
export class ParseIdPipe implements PipeTransform<string, number> {
  transform(value: string): number {
    return parseId(value, INT4_MAX);
  }
}

/** A path id of a bigint row (messages, deliveries): up to Number.MAX_SAFE_INTEGER. */
@Injectable()
export class ParseBigIdPipe implements PipeTransform<string, number> {
  transform(value: string): number {
    return parseId(value, Number.MAX_SAFE_INTEGER);
  }
}
