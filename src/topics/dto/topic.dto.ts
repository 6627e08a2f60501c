import { ApiProperty } from '@nestjs/swagger';
import { Topic } from '../../database/entities/topic.entity.js';

export class TopicDto {
  @ApiProperty({ example: 1 })
  id: number;

  @ApiProperty({ example: 'orders' })
  name: string;

  @ApiProperty({ format: 'date-time' })
  created_at: string;
}

export function toTopicJson(topic: Topic): TopicDto {
  return { id: topic.id, name: topic.name, created_at: topic.createdAt.toISOString() };
}
