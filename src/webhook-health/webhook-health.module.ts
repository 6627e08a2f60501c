import { Controller, Get, Inject, Module, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import pg from 'pg';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { PG_POOL } from '../database/database.module.js';
import {
  ListWebhookHealthDto,
  toWebhookHealthJson,
  WebhookHealthDto,
  WebhookHealthRow,
} from './webhook-health.dto.js';
import { WEBHOOK_HEALTH } from './webhook-health.sql.js';

@ApiTags('webhooks')
@Controller('webhook-health')
export class WebhookHealthController {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}

  @ApiOperation({
    summary: 'Webhooks at a glance: status, pending, oldest pending age, dead, blocked, last error',
    description:
      'The figures of the pgwq_webhook_* metrics, fresh, for the webhooks of the given topics ' +
      '(or all), in webhook id order. Cheap at any backlog: no count over deliveries.',
  })
  @Get()
  @ApiOkResponse({ type: [WebhookHealthDto] })
  @ApiErrors(400)
  async list(@Query() query: ListWebhookHealthDto): Promise<Page<WebhookHealthDto>> {
    const { rows } = await this.pool.query<WebhookHealthRow>(WEBHOOK_HEALTH, [
      query.topic_ids ?? null,
      query.after,
      query.limit,
    ]);
    return new Page(rows.map(toWebhookHealthJson), query.limit);
  }
}

@Module({ controllers: [WebhookHealthController] })
export class WebhookHealthModule {}
