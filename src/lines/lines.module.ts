import { Module } from '@nestjs/common';
import { LinesController } from './lines.controller.js';
import { LinesService } from './lines.service.js';
import { RewindService } from '../queue/rewind.service.js';

/** DESIGN §7: lines, skip, replay; RewindService also serves the dead letter's redrive. */
@Module({
  controllers: [LinesController],
  providers: [LinesService, RewindService],
  exports: [RewindService],
})
export class LinesModule {}
