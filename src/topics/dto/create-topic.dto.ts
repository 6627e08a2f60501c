import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';
import { TOPIC_NAME_PATTERN } from '../../database/entities/topic.entity.js';

export class CreateTopicDto {
  @ApiProperty({
    description:
      'Letters, digits, ".", "_" and "-"; starts with a letter or digit; 1-200 chars; not ' +
      'digits only (a route segment of digits is a topic id)',
    pattern: TOPIC_NAME_PATTERN,
    minLength: 1,
    maxLength: 200,
    example: 'orders',
  })
  @IsString()
  @Matches(new RegExp(TOPIC_NAME_PATTERN), {
    message: 'name must be 1-200 letters, digits, ".", "_" or "-", starting with a letter or digit',
  })
  @Matches(/^(?![0-9]+$)/, {
    message: 'name must not be digits only: routes read a topic segment of digits as its id',
  })
  name: string;
}
