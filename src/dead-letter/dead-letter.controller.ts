import { BadRequestException, Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiOkResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import { Audited, bodyOf } from '../audit/audited.js';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { DeliveryDto, toDeliveryJson } from '../deliveries/dto/delivery.dto.js';
import { DeadLetterService } from './dead-letter.service.js';
import { DeadLetterFilterDto, ListDeadLetterDto } from './dto/dead-letter-query.dto.js';
import { DeadLetterCountDto } from './dto/dead-letter.dto.js';
import { RedriveDto, RedrivenDto } from './dto/redrive.dto.js';
import { RewindService } from '../queue/rewind.service.js';

@ApiTags('dead-letter')
@Controller('dead-letter')
export class DeadLetterController {
  constructor(
    private readonly deadLetter: DeadLetterService,
    private readonly rewinds: RewindService,
  ) {}

  @ApiOperation({ summary: 'List dead-lettered deliveries' })
  @Get()
  @ApiOkResponse({
    type: [DeliveryDto],
    description:
      "Dead deliveries, each with its message's id, topic, partition key and sequence; " +
      'the payload is at GET /messages/{message_id}',
  })
  @ApiErrors(400)
  async list(@Query() query: ListDeadLetterDto): Promise<Page<DeliveryDto>> {
    return new Page((await this.deadLetter.list(query)).map(toDeliveryJson), query.limit);
  }

  @ApiOperation({ summary: 'Count dead-lettered deliveries' })
  @Get('count')
  @ApiOkResponse({ type: DeadLetterCountDto })
  @ApiErrors(400)
  async count(@Query() query: DeadLetterFilterDto): Promise<DeadLetterCountDto> {
    return { count: await this.deadLetter.count(query) };
  }

  @ApiOperation({
    summary: 'Send dead deliveries again (at least one filter)',
    description:
      'Each chosen dead delivery is pending again with a fresh retry budget and goes back to ' +
      'the head of its line: it is sent before anything still waiting there, several in one ' +
      'line in sequence order. A blocked line sends its head again too. Its attempts so far ' +
      'stay in its log. Works in batches of whole lines.',
  })
  @Post('redrive')
  @Audited('dead_letter.redrive', (req, result) => {
    const filter = bodyOf(req);
    return {
      target:
        filter.webhook_id !== undefined
          ? `webhook:${String(filter.webhook_id)}`
          : filter.topic_id !== undefined
            ? `topic:${String(filter.topic_id)}`
            : 'dead-letter',
      parameters: { ...filter, ...(result as RedrivenDto) },
    };
  })
  @HttpCode(200)
  @ApiOkResponse({ type: RedrivenDto })
  @ApiErrors(400)
  async redrive(@Body() body: RedriveDto): Promise<RedrivenDto> {
    if (Object.values(body).every((value) => value === undefined)) {
      throw new BadRequestException(
        'give at least one of delivery_ids, webhook_id, topic_id, partition_key, since, until',
      );
    }
    return { redriven: await this.rewinds.redrive(body) };
  }
}
