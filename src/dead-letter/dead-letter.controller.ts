import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { toDeliveryJson } from '../deliveries/dto/delivery.dto.js';
import { DeadLetterService } from './dead-letter.service.js';
import { DeadLetterFilterDto, ListDeadLetterDto } from './dto/dead-letter-query.dto.js';
import { DeadLetterCountDto, DeadLetterDto } from './dto/dead-letter.dto.js';

@ApiTags('dead-letter')
@Controller('dead-letter')
export class DeadLetterController {
  constructor(private readonly deadLetter: DeadLetterService) {}

  @ApiOperation({ summary: 'List dead-lettered deliveries with their messages' })
  @Get()
  @ApiOkResponse({ type: [DeadLetterDto], description: 'Dead deliveries, each with its message' })
  @ApiErrors(400)
  async list(@Query() query: ListDeadLetterDto): Promise<DeadLetterDto[]> {
    return (await this.deadLetter.list(query)).map((d) => ({
      ...toDeliveryJson(d),
      message: {
        id: d.message!.id,
        topic_id: d.message!.topicId,
        partition_key: d.message!.partitionKey,
        sequence: d.message!.sequence,
        payload: d.message!.payload,
        created_at: d.message!.createdAt.toISOString(),
      },
    }));
  }

  @ApiOperation({ summary: 'Count dead-lettered deliveries' })
  @Get('count')
  @ApiOkResponse({ type: DeadLetterCountDto })
  @ApiErrors(400)
  async count(@Query() query: DeadLetterFilterDto): Promise<DeadLetterCountDto> {
    return { count: await this.deadLetter.count(query) };
  }
}
