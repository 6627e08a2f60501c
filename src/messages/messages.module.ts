import { Module } from '@nestjs/common';
import { MessagesController } from './messages.controller.js';
import { MessagesService } from './messages.service.js';
import { MessageSearch } from './message-search.service.js';

@Module({
  controllers: [MessagesController],
  providers: [MessagesService, MessageSearch],
})
export class MessagesModule {}
