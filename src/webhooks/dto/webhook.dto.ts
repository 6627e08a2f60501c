import { ApiProperty } from '@nestjs/swagger';
import { Webhook } from '../../database/entities/webhook.entity.js';
import { EXAMPLE_SECRET } from '../webhook-secret.js';

export class WebhookDto {
  @ApiProperty({ example: 1 })
  id: number;

  @ApiProperty({ example: 1 })
  topic_id: number;

  @ApiProperty({ example: 'https://example.com/hooks/orders' })
  url: string;

  @ApiProperty({ format: 'date-time' })
  created_at: string;
}

export class CreatedWebhookDto extends WebhookDto {
  @ApiProperty({ description: 'The signing secret; also at GET /webhooks/{id}/secret' })
  secret: string;
}

export class WebhookSecretDto {
  @ApiProperty({ example: EXAMPLE_SECRET })
  secret: string;
}

export function toWebhookJson(webhook: Webhook): WebhookDto {
  return {
    id: webhook.id,
    topic_id: webhook.topicId,
    url: webhook.url,
    created_at: webhook.createdAt.toISOString(),
  };
}
