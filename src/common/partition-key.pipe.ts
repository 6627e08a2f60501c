import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';
import { PARTITION_KEY_PATTERN } from '../database/entities/message.entity.js';

const PARTITION_KEY = new RegExp(PARTITION_KEY_PATTERN);

/**
 * A partition key in a path: what the messages table's check allows (1-255 printable ASCII
 * without spaces), else a 400. A key PostgreSQL cannot hold (`%00`) never reaches a query.
 */
@Injectable()
export class ParsePartitionKeyPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!PARTITION_KEY.test(value)) {
      throw new BadRequestException(
        'partition_key must be 1-255 printable ASCII characters without spaces',
      );
    }
    return value;
  }
}
