import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
  ApiTags,
  ApiOperation,
} from '@nestjs/swagger';
import { Audited, bodyOf, webhookTarget } from '../audit/audited.js';
import { ApiErrors } from '../common/error-responses.js';
import { ParseIdPipe } from '../common/id.pipe.js';
import { ApiTopicParam, ParseTopicRefPipe } from '../common/topic-ref.js';
import type { TopicRef } from '../common/topic-ref.js';
import { Page } from '../common/page.js';
import { IntIdPaginationDto } from '../common/pagination.dto.js';
import { CreateWebhookDto } from './dto/create-webhook.dto.js';
import { UpdateWebhookDto } from './dto/update-webhook.dto.js';
import {
  CreatedWebhookDto,
  toWebhookJson,
  WebhookDto,
  WebhookSecretDto,
} from './dto/webhook.dto.js';
import { withoutHeaderValues } from './webhook-manners.js';
import { WebhooksService } from './webhooks.service.js';

@ApiTags('webhooks')
@Controller()
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @ApiOperation({ summary: 'Register a webhook (SSRF-checked) and get its secret' })
  @Post('webhooks')
  @ApiCreatedResponse({ type: CreatedWebhookDto })
  @ApiErrors(400, 404)
  async create(@Body() body: CreateWebhookDto): Promise<CreatedWebhookDto> {
    const webhook = await this.webhooks.create(body);
    return { ...toWebhookJson(webhook), secret: webhook.secret };
  }

  @ApiOperation({ summary: "List a topic's webhooks (without secrets)" })
  @Get('topics/:topic/webhooks')
  @ApiTopicParam()
  @ApiOkResponse({ type: [WebhookDto] })
  @ApiErrors(400, 404)
  async listByTopic(
    @Param('topic', ParseTopicRefPipe) topicId: TopicRef,
    @Query() page: IntIdPaginationDto,
  ): Promise<Page<WebhookDto>> {
    return new Page(
      (await this.webhooks.listByTopic(topicId, page)).map(toWebhookJson),
      page.limit,
    );
  }

  @ApiOperation({
    summary: 'Change a webhook: pause or resume it, its URL, its own settings',
    description:
      'Paused: no new attempt starts (one in flight finishes and is recorded); messages still ' +
      'fan out and wait. active: every line resumes where it stopped, in order (also after a ' +
      'worker disabled it). A new URL passes the registration checks and applies from the next ' +
      'attempt, as do the settings (on_exhausted, headers, max_in_flight, rate_limit_per_second, ' +
      'max_retries, backoff_factor; absent = unchanged, null = the global setting).',
  })
  @Patch('webhooks/:id')
  // The headers' values are write-only: the audit log keeps their names.
  @Audited('webhook.update', (req) => ({
    target: webhookTarget(req),
    parameters: withoutHeaderValues(bodyOf(req)),
  }))
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: WebhookDto })
  @ApiErrors(400, 404, 409)
  async update(
    @Param('id', ParseIdPipe) id: number,
    @Body() body: UpdateWebhookDto,
  ): Promise<WebhookDto> {
    return toWebhookJson(await this.webhooks.update(id, body));
  }

  @ApiOperation({ summary: 'Delete a webhook' })
  @Delete('webhooks/:id')
  @Audited('webhook.delete')
  @HttpCode(204)
  @ApiParam({ name: 'id', type: Number })
  @ApiNoContentResponse({
    description:
      'Deleted: nothing more is fanned out to it or claimed for it (a request already in flight ' +
      'may still arrive); the workers remove its deliveries and attempts in the background',
  })
  @ApiErrors(400, 404)
  async delete(@Param('id', ParseIdPipe) id: number): Promise<void> {
    await this.webhooks.delete(id);
  }

  @ApiOperation({ summary: "Show a webhook's signing secret" })
  @Get('webhooks/:id/secret')
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: WebhookSecretDto })
  @ApiErrors(400, 404)
  async secret(@Param('id', ParseIdPipe) id: number): Promise<WebhookSecretDto> {
    return { secret: (await this.webhooks.getById(id)).secret };
  }

  @ApiOperation({ summary: "Rotate a webhook's signing secret" })
  @Post('webhooks/:id/secret/rotate')
  @Audited('webhook.rotate_secret')
  @HttpCode(200)
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({
    type: WebhookSecretDto,
    description:
      'The new secret. The old one keeps signing, beside it, for WEBHOOK_SECRET_GRACE_SECONDS ' +
      '(default 24 hours), so receivers can switch without a gap.',
  })
  @ApiErrors(400, 404)
  async rotate(@Param('id', ParseIdPipe) id: number): Promise<WebhookSecretDto> {
    return { secret: await this.webhooks.rotateSecret(id) };
  }
}
