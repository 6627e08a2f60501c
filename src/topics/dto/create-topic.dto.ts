import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';
import { TOPIC_NAME_PATTERN } from '../../database/entities/topic.entity.js';

export class CreateTopicDto {
  @ApiProperty({
    description: 'Letters, digits, ".", "_" and "-"; starts with a letter or digit; 1-200 chars',
    pattern: TOPIC_NAME_PATTERN,
    minLength: 1,
    maxLength: 200,
    example: 'orders',
  })
  @IsString()
  @Matches(new RegExp(TOPIC_NAME_PATTERN), {
    message: 'name must be 1-200 letters, digits, ".", "_" or "-", starting with a letter or digit',
  })
  name: string;
}
