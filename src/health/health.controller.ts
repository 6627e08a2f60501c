import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiTags, ApiOperation } from '@nestjs/swagger';
import pg from 'pg';
import { ApiErrors } from '../common/error-responses.js';
import { PG_POOL } from '../database/database.module.js';
import { Public } from '../security/public.decorator.js';

class HealthDto {
  @ApiProperty({ example: 'ok' })
  status: string;
}

const HEALTH_TIMEOUT_MS = 2000;

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
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pool.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS);
        }),
      ]);
      return { status: 'ok' };
    } catch {
      throw new ServiceUnavailableException('the database does not answer');
    } finally {
      clearTimeout(timer);
    }
  }
}
