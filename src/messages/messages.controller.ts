import { Controller, Get, Header, HttpStatus, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiErrors } from '../common/error-responses.js';
import { ParseBigIdPipe } from '../common/id.pipe.js';
import { ApiTopicParam, ParseTopicRefPipe } from '../common/topic-ref.js';
import type { TopicRef } from '../common/topic-ref.js';
import { RawJsonBody } from '../common/json-body.js';
import { MessageDto, MessageWithPayloadDto, PublishedBatchDto } from './dto/message.dto.js';
import { PublishBatchDto, PublishMessageDto } from './dto/publish-message.dto.js';
import { MessagesService } from './messages.service.js';
import { MessageSearch, toMessageJson } from './message-search.service.js';
import { ListMessagesDto } from './dto/list-messages.dto.js';
import { Page } from '../common/page.js';
import { readBatchRequest, readPublishRequest } from './publish-request.js';

@ApiTags('messages')
@Controller()
export class MessagesController {
  constructor(
    private readonly messages: MessagesService,
    private readonly search: MessageSearch,
  ) {}

  @ApiOperation({
    summary: 'Publish a message to a topic',
    description:
      'With an idempotency_key the topic already has, nothing is published and the answer is ' +
      '200 with the original message.',
  })
  @Post('topics/:topic/messages')
  @ApiTopicParam()
  @ApiBody({ type: PublishMessageDto })
  @ApiCreatedResponse({ type: MessageDto, description: 'Published' })
  @ApiOkResponse({
    type: MessageDto,
    description: 'A repeat of an idempotency key: the original message; nothing was published',
  })
  @ApiErrors(400, 404, 413)
  async publish(
    @Param('topic', ParseTopicRefPipe) topic: TopicRef,
    @RawJsonBody() body: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<MessageDto> {
    const { message, created } = await this.messages.publish(topic, readPublishRequest(body));
    if (!created) res.status(HttpStatus.OK);
    return message;
  }

  @ApiOperation({
    summary: 'Publish up to 1,000 messages to a topic at once',
    description:
      'One transaction: every message is published or none is (a bad item is a 400 or 413 ' +
      'naming its index, messages[i]). Sequences follow input order within each partition. ' +
      'An item whose idempotency_key the topic already has, or an earlier item of the batch ' +
      'has, publishes nothing and comes back as the original message. 201 when the batch ' +
      'published at least one message, 200 when every item was a repeat (a retried batch).',
  })
  @Post('topics/:topic/messages/batch')
  @ApiTopicParam()
  @ApiBody({ type: PublishBatchDto })
  @ApiCreatedResponse({ type: PublishedBatchDto, description: 'Published, in input order' })
  @ApiOkResponse({
    type: PublishedBatchDto,
    description: 'Every item was a repeat: the original messages; nothing was published',
  })
  @ApiErrors(400, 404, 413)
  async publishBatch(
    @Param('topic', ParseTopicRefPipe) topic: TopicRef,
    @RawJsonBody() body: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<PublishedBatchDto> {
    const published = await this.messages.publishBatch(topic, readBatchRequest(body));
    if (!published.some((p) => p.created)) res.status(HttpStatus.OK);
    return { messages: published.map((p) => p.message) };
  }

  @ApiOperation({
    summary:
      "Find a topic's messages: by partition key or idempotency key, newest first on request",
    description: 'Without payloads: GET /messages/{id} shows one with its payload.',
  })
  @Get('messages')
  @ApiOkResponse({ type: [MessageDto] })
  @ApiErrors(400, 404)
  async list(@Query() query: ListMessagesDto): Promise<Page<MessageDto>> {
    return new Page((await this.search.list(query)).map(toMessageJson), query.limit);
  }

  @ApiOperation({ summary: 'Show one message with its payload' })
  @Get('messages/:id')
  @Header('Content-Type', 'application/json; charset=utf-8')
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: MessageWithPayloadDto })
  @ApiErrors(400, 404, 422)
  show(@Param('id', ParseBigIdPipe) id: number): Promise<string> {
    return this.messages.showJson(id);
  }
}
