import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiTags, ApiOperation } from '@nestjs/swagger';
import pg from 'pg';
import { ApiErrors } from '../common/error-responses.js';
import { PG_POOL } from '../database/database.module.js';
import { Public } from '../security/public.decorator.js';
import { databaseAnswers } from './database-answers.js';

class HealthDto {
  @ApiProperty({ example: 'ok' })
  status: string;
}

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}

  @ApiOperation({ summary: 'Check that the API and its database answer' })
  @Get()
  @Public()
  @ApiOkResponse({ type: HealthDto, description: 'The database answers' })
  @ApiErrors(503)
  async check(): Promise<HealthDto> {
    if (!(await databaseAnswers(this.pool))) {
      throw new ServiceUnavailableException('the database does not answer');
    }
    return { status: 'ok' };
  }
}
