import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { INT4_MAX } from '../../common/pagination.dto.js';
import { MAX_URL_LENGTH } from '../webhook-url.js';
import { EXAMPLE_SECRET } from '../webhook-secret.js';
import { WebhookMannersDto } from '../webhook-manners.js';
import { EventTypesProperty } from './event-types.js';

/** The webhook's own settings (on_exhausted, headers, limits, retries) come from WebhookMannersDto. */
export class CreateWebhookDto extends WebhookMannersDto {
  @ApiProperty({ example: 1 })
  @IsInt()
  @Min(1)
  @Max(INT4_MAX)
  topic_id: number;

  @ApiProperty({ example: 'https://example.com/hooks/orders', maxLength: MAX_URL_LENGTH })
  @IsString()
  @MaxLength(MAX_URL_LENGTH)
  url: string;

  @ApiPropertyOptional({
    description:
      'Your own signing secret: "whsec_" + base64 of 24 to 64 bytes. Generated when omitted.',
    example: EXAMPLE_SECRET,
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  secret?: string;

  @EventTypesProperty()
  event_types?: string[] | null;
  // --- end of routing ---
}
