import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { DeliveryDto, toDeliveryJson } from '../deliveries/dto/delivery.dto.js';
import { DeadLetterService } from './dead-letter.service.js';
import { DeadLetterFilterDto, ListDeadLetterDto } from './dto/dead-letter-query.dto.js';
import { DeadLetterCountDto } from './dto/dead-letter.dto.js';

@ApiTags('dead-letter')
@Controller('dead-letter')
export class DeadLetterController {
  constructor(private readonly deadLetter: DeadLetterService) {}

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
}
