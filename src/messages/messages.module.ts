import { Module } from '@nestjs/common';
import { TopicsModule } from '../topics/topics.module.js';
import { MessagesController } from './messages.controller.js';
import { MessagesService } from './messages.service.js';

@Module({
  imports: [TopicsModule],
  controllers: [MessagesController],
  providers: [MessagesService],
})
export class MessagesModule {}
