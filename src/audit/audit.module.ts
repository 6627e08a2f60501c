import { Controller, Get, Module, Query } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ApiErrors } from '../common/error-responses.js';
import { Page } from '../common/page.js';
import { AuditEntry } from '../database/entities/audit-entry.entity.js';
import { SecurityModule } from '../security/security.module.js';
import { AuditEntryDto, ListAuditLogDto, toAuditEntryJson } from './audit-log.dto.js';
import { AuditLog } from './audit-log.service.js';
import { AuditInterceptor } from './audited.js';

@ApiTags('audit')
@Controller('audit-log')
export class AuditLogController {
  constructor(private readonly log: AuditLog) {}

  @ApiOperation({
    summary: 'Who did what: every operator action, newest first',
    description:
      'Changing, deleting or rotating the secret of a webhook, redrive, replay and skip, each ' +
      "with its time, the API key's name (never the key), the action, its target and its " +
      'parameters. Kept for RETENTION_AUDIT_SECONDS (default a year).',
  })
  @Get()
  @ApiOkResponse({ type: [AuditEntryDto] })
  @ApiErrors(400)
  async list(@Query() query: ListAuditLogDto): Promise<Page<AuditEntryDto>> {
    return new Page((await this.log.list(query)).map(toAuditEntryJson), query.limit);
  }
}

/** The audit log: its table's service, its route, and the interceptor of @Audited routes. */
@Module({
  imports: [TypeOrmModule.forFeature([AuditEntry]), SecurityModule],
  controllers: [AuditLogController],
  providers: [AuditLog, { provide: APP_INTERCEPTOR, useClass: AuditInterceptor }],
})
export class AuditModule {}
