import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, MoreThan, Repository } from 'typeorm';
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
    const desc = query.order === 'desc';
    const id = desc ? (query.after > 0 ? LessThan(query.after) : undefined) : MoreThan(query.after);
    return this.entries.find({
      where: { ...(id ? { id } : {}), ...(query.target ? { target: query.target } : {}) },
      // With a target, audit_log_target_idx's order (target, id): the planner walks that index.
      order: {
        ...(query.target ? { target: desc ? 'DESC' : 'ASC' } : {}),
        id: desc ? 'DESC' : 'ASC',
      },
      take: query.limit,
    });
  }
}
