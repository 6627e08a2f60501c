import { Controller, Get, Header, Param, Post } from '@nestjs/common';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { ParseBigIdPipe } from '../common/id.pipe.js';
import { RawJsonBody } from '../common/json-body.js';
import { MessageDto, MessageWithPayloadDto } from './dto/message.dto.js';
import { PublishMessageDto } from './dto/publish-message.dto.js';
import { MessagesService } from './messages.service.js';
import { readPublishRequest } from './publish-request.js';

@ApiTags('messages')
@Controller()
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @ApiOperation({ summary: 'Publish a message to a topic' })
  @Post('topics/:name/messages')
  @ApiParam({ name: 'name', description: 'topic name' })
  @ApiBody({ type: PublishMessageDto })
  @ApiCreatedResponse({ type: MessageDto })
  @ApiErrors(400, 404, 413)
  publish(@Param('name') name: string, @RawJsonBody() body: string): Promise<MessageDto> {
    return this.messages.publish(name, readPublishRequest(body));
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
