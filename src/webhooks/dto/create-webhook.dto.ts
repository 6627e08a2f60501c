import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { MAX_URL_LENGTH } from '../webhook-url.js';

export class CreateWebhookDto {
  @ApiProperty({ example: 1 })
  @IsInt()
  @Min(1)
  @Max(2147483647)
  topic_id: number;

  @ApiProperty({ example: 'https://example.com/hooks/orders', maxLength: MAX_URL_LENGTH })
  @IsString()
  @MaxLength(MAX_URL_LENGTH)
  url: string;

  @ApiPropertyOptional({
    description:
      'Your own signing secret: "whsec_" + base64 of 24 to 64 bytes. Generated when omitted.',
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  secret?: string;
}
