import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import { AuditEntry } from '../database/entities/audit-entry.entity.js';
import { ListAuditLogDto } from './audit-log.dto.js';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  parameters: Record<string, unknown>;
}

/** The audit log (DESIGN §12): a row per operator action, and the same as a log line. */
@Injectable()
export class AuditLog {
  private readonly logger = new Logger('Audit');

  constructor(@InjectRepository(AuditEntry) private readonly entries: Repository<AuditEntry>) {}

  async record(entry: AuditRecord): Promise<void> {
    await this.entries.save(this.entries.create(entry));
    this.logger.log(
      `${entry.actor} ${entry.action} ${entry.target} ${JSON.stringify(entry.parameters)}`,
    );
  }

  /** Newest first unless asked otherwise; by target: audit_log_target_idx (target, id). */
  list(query: ListAuditLogDto): Promise<AuditEntry[]> {
    // With a target, audit_log_target_idx's order (target, id): the planner walks that index.
    return query.target
      ? findPage(this.entries, query, { target: query.target }, 'target')
      : findPage(this.entries, query);
  }
}
