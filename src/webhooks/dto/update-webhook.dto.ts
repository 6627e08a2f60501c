import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { MAX_URL_LENGTH } from '../webhook-url.js';
import { WebhookMannersDto } from '../webhook-manners.js';
import { EventTypesProperty } from './event-types.js';

/** The states an operator may set; `disabled` is set only by a worker (410, or failing). */
export const SETTABLE_STATUSES = ['active', 'paused'] as const;
export type SettableStatus = (typeof SETTABLE_STATUSES)[number];

/** The webhook's own settings (on_exhausted, headers, limits, retries) come from WebhookMannersDto. */
export class UpdateWebhookDto extends WebhookMannersDto {
  @ApiPropertyOptional({
    example: 'https://example.com/hooks/orders-v2',
    maxLength: MAX_URL_LENGTH,
    description: 'Checked as at registration; applies from the next attempt',
  })
  @IsOptional()
  @IsString()
  @MaxLength(MAX_URL_LENGTH)
  url?: string;

  @ApiPropertyOptional({
    enum: SETTABLE_STATUSES,
    example: 'paused',
    description:
      'paused: no new attempt starts (one in flight finishes and is recorded), messages wait. ' +
      'active: every line resumes where it stopped, in order; also re-enables a disabled webhook.',
  })
  @IsOptional()
  @IsIn(SETTABLE_STATUSES)
  status?: SettableStatus;

  @EventTypesProperty()
  event_types?: string[] | null;
  // --- end of routing ---
}
