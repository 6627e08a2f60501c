import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Delivery } from '../database/entities/delivery.entity.js';
import { LinesModule } from '../lines/lines.module.js';
import { DeadLetterController } from './dead-letter.controller.js';
import { DeadLetterService } from './dead-letter.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([Delivery]), LinesModule],
  controllers: [DeadLetterController],
  providers: [DeadLetterService],
})
export class DeadLetterModule {}
