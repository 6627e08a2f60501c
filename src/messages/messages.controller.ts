import { Body, Controller, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiParam, ApiTags, ApiOperation } from '@nestjs/swagger';
import { ApiErrors } from '../common/error-responses.js';
import { MessageDto } from './dto/message.dto.js';
import { PublishMessageDto } from './dto/publish-message.dto.js';
import { MessagesService } from './messages.service.js';

@ApiTags('messages')
@Controller('topics/:name/messages')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @ApiOperation({ summary: 'Publish a message to a topic' })
  @Post()
  @ApiParam({ name: 'name', description: 'topic name' })
  @ApiCreatedResponse({ type: MessageDto })
  @ApiErrors(400, 404, 413)
  publish(@Param('name') name: string, @Body() body: PublishMessageDto): Promise<MessageDto> {
    return this.messages.publish(name, body.partition_key, body.payload);
  }
}
