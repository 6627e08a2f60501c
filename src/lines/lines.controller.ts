import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { Audited, bodyOf, webhookTarget } from '../audit/audited.js';
import { ApiErrors } from '../common/error-responses.js';
import { ParseIdPipe } from '../common/id.pipe.js';
import { ParsePartitionKeyPipe } from '../common/partition-key.pipe.js';
import { LineDto, ListLinesDto } from './dto/line.dto.js';
import { ReplayDto, ReplayedDto } from './dto/replay.dto.js';
import { LinesService } from './lines.service.js';

@ApiTags('lines')
@Controller('webhooks/:id')
export class LinesController {
  constructor(private readonly lines: LinesService) {}

  @ApiOperation({
    summary: "A webhook's lines (one per partition): where each stands and what is stuck",
  })
  @Get('lines')
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: [LineDto] })
  @ApiErrors(400, 404)
  list(@Param('id', ParseIdPipe) id: number, @Query() query: ListLinesDto): Promise<LineDto[]> {
    return this.lines.list(id, query);
  }

  @ApiOperation({
    summary: "Skip a blocked line's dead head: it stays dead and the line moves on",
  })
  @Post('lines/:partition_key/skip')
  @Audited('line.skip', (req) => ({
    target: webhookTarget(req),
    parameters: { partition_key: req.params.partition_key },
  }))
  @HttpCode(200)
  @ApiParam({ name: 'id', type: Number })
  @ApiParam({ name: 'partition_key', type: String, example: 'user-42' })
  @ApiOkResponse({ type: LineDto })
  @ApiErrors(400, 404, 409)
  skip(
    @Param('id', ParseIdPipe) id: number,
    @Param('partition_key', ParsePartitionKeyPipe) partitionKey: string,
  ): Promise<LineDto> {
    return this.lines.skip(id, partitionKey);
  }

  @ApiOperation({
    summary: 'Send messages to this webhook again: a partition from a sequence on, or since a time',
    description:
      'A rewind: every message of the partition from from_sequence on (or, for every ' +
      'partition, from its first message published since `since`) is sent again, in order, ' +
      'before anything newer in its line. Receivers see the same webhook-id again.',
  })
  @Post('replay')
  @Audited('webhook.replay', (req, result) => ({
    target: webhookTarget(req),
    parameters: { ...bodyOf(req), ...(result as ReplayedDto) },
  }))
  @HttpCode(200)
  @ApiParam({ name: 'id', type: Number })
  @ApiOkResponse({ type: ReplayedDto })
  @ApiErrors(400, 404)
  async replay(
    @Param('id', ParseIdPipe) id: number,
    @Body() body: ReplayDto,
  ): Promise<ReplayedDto> {
    return { replayed: await this.lines.replay(id, body) };
  }
}
