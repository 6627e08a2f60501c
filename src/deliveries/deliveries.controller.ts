import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiOkResponse, ApiParam, ApiTags, ApiOperation } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { ParseBigIdPipe, ParseIdPipe } from '../common/id.pipe.js';
import { Page } from '../common/page.js';
import { PaginationDto } from '../common/pagination.dto.js';
import { DeliveriesService } from './deliveries.service.js';
import {
  DeliveryAttemptDto,
  DeliveryDto,
  toDeliveryAttemptJson,
  toDeliveryJson,
} from './dto/delivery.dto.js';
import { ListDeliveriesDto } from './dto/list-deliveries.dto.js';

@ApiTags('deliveries')
@Controller()
export class DeliveriesController {
  constructor(private readonly deliveries: DeliveriesService) {}

  @ApiOperation({
    summary: "List a webhook's deliveries, by status and partition key, newest first on request",
  })
  @Get('webhooks/:id/deliveries')
  @ApiParam({ name: 'id', type: Number, description: 'webhook id' })
  @ApiOkResponse({ type: [DeliveryDto] })
  @ApiErrors(400, 404)
  async listByWebhook(
    @Param('id', ParseIdPipe) webhookId: number,
    @Query() query: ListDeliveriesDto,
  ): Promise<Page<DeliveryDto>> {
    return new Page(
      (await this.deliveries.listByWebhook(webhookId, query)).map(toDeliveryJson),
      query.limit,
    );
  }

  @ApiOperation({ summary: 'Show one delivery' })
  @Get('deliveries/:id')
  @ApiParam({ name: 'id', type: Number, description: 'delivery id' })
  @ApiOkResponse({ type: DeliveryDto })
  @ApiErrors(400, 404)
  async show(@Param('id', ParseBigIdPipe) id: number): Promise<DeliveryDto> {
    return toDeliveryJson(await this.deliveries.getById(id));
  }

  @ApiOperation({
    summary: "A message's delivery to every webhook",
    description: 'The id is the message id, the `webhook-id` header a receiver saw.',
  })
  @Get('messages/:id/deliveries')
  @ApiParam({ name: 'id', type: Number, description: 'message id' })
  @ApiOkResponse({ type: [DeliveryDto] })
  @ApiErrors(400, 404)
  async listByMessage(
    @Param('id', ParseBigIdPipe) messageId: number,
    @Query() page: PaginationDto,
  ): Promise<Page<DeliveryDto>> {
    return new Page(
      (await this.deliveries.listByMessage(messageId, page)).map(toDeliveryJson),
      page.limit,
    );
  }

  @ApiOperation({ summary: "List a delivery's attempts" })
  @Get('deliveries/:id/attempts')
  @ApiParam({ name: 'id', type: Number, description: 'delivery id' })
  @ApiOkResponse({ type: [DeliveryAttemptDto], description: 'Every attempt, oldest first' })
  @ApiErrors(400, 404)
  async listAttempts(
    @Param('id', ParseBigIdPipe) deliveryId: number,
    @Query() page: PaginationDto,
  ): Promise<Page<DeliveryAttemptDto>> {
    return new Page(
      (await this.deliveries.listAttempts(deliveryId, page)).map(toDeliveryAttemptJson),
      page.limit,
    );
  }
}
