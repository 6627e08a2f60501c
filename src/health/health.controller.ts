import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiTags, ApiOperation } from '@nestjs/swagger';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { ApiErrors } from '../common/error-responses.js';
import { describePending, MIGRATE_HINT, pendingMigrations } from '../database/database-check.js';
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
  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly config: AppConfig,
  ) {}

  @ApiOperation({ summary: 'Check that the database answers and has every migration' })
  @Get()
  @Public()
  @ApiOkResponse({ type: HealthDto, description: 'The database answers and is migrated' })
  @ApiErrors(503)
  async check(): Promise<HealthDto> {
    let timer: NodeJS.Timeout | undefined;
    let pending: string[];
    try {
      pending = await Promise.race([
        pendingMigrations(this.pool, this.config.databaseSchema),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), HEALTH_TIMEOUT_MS);
        }),
      ]);
    } catch {
      throw new ServiceUnavailableException('the database does not answer');
    } finally {
      clearTimeout(timer);
    }
    const missing = describePending(pending, false);
    if (missing) throw new ServiceUnavailableException(`${missing}; ${MIGRATE_HINT}`);
    return { status: 'ok' };
  }
}
