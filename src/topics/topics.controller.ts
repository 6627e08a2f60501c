import { Body, Controller, Get, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { IntIdPaginationDto } from '../common/pagination.dto.js';
import { CreateTopicDto } from './dto/create-topic.dto.js';
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

  @ApiOperation({ summary: 'List topics' })
  @Get()
  @ApiOkResponse({ type: [TopicDto] })
  @ApiErrors(400)
  async list(@Query() page: IntIdPaginationDto): Promise<Page<TopicDto>> {
    return new Page((await this.topics.list(page)).map(toTopicJson), page.limit);
  }
}
