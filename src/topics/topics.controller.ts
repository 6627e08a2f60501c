import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { ApiTopicParam, ParseTopicRefPipe } from '../common/topic-ref.js';
import type { TopicRef } from '../common/topic-ref.js';
import { CreateTopicDto } from './dto/create-topic.dto.js';
import { ListTopicsDto } from './dto/list-topics.dto.js';
import { TopicDto, toTopicJson } from './dto/topic.dto.js';
import { TopicsService } from './topics.service.js';

@ApiTags('topics')
@Controller('topics')
export class TopicsController {
  constructor(private readonly topics: TopicsService) {}

  @ApiOperation({ summary: 'Create a topic' })
  @Post()
  @ApiCreatedResponse({ type: TopicDto })
  @ApiErrors(400, 409)
  async create(@Body() body: CreateTopicDto): Promise<TopicDto> {
    return toTopicJson(await this.topics.create(body.name));
  }

  @ApiOperation({ summary: 'List topics, or find them by name prefix' })
  @Get()
  @ApiOkResponse({ type: [TopicDto] })
  @ApiErrors(400)
  async list(@Query() page: ListTopicsDto): Promise<Page<TopicDto>> {
    return new Page((await this.topics.list(page)).map(toTopicJson), page.limit);
  }

  @ApiOperation({ summary: 'Show a topic, by name or id' })
  @Get(':topic')
  @ApiTopicParam()
  @ApiOkResponse({ type: TopicDto })
  @ApiErrors(400, 404)
  async show(@Param('topic', ParseTopicRefPipe) topic: TopicRef): Promise<TopicDto> {
    return toTopicJson(await this.topics.get(topic));
  }
}
