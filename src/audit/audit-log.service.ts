import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { findPage } from '../common/keyset.js';
import type { Queryable } from '../database/action-record.js';
import { AuditEntry } from '../database/entities/audit-entry.entity.js';
import { ListAuditLogDto } from './audit-log.dto.js';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  parameters: Record<string, unknown>;
}

/**
 * The row of an action: inserted by the first of the action's transactions, and brought up to
 * date by each later one (a rewind in batches) through its id.
 */
const WRITE_ENTRY = `
INSERT INTO audit_log (id, actor, action, target, parameters)
VALUES (coalesce($1::bigint, nextval(pg_get_serial_sequence('audit_log', 'id'))), $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET parameters = EXCLUDED.parameters
RETURNING id
`;

/** The audit log (DESIGN §12): a row per operator action, and the same as a log line. */
@Injectable()
export class AuditLog {
  private readonly logger = new Logger('Audit');

  constructor(@InjectRepository(AuditEntry) private readonly entries: Repository<AuditEntry>) {}

  /**
   * Writes an action's row on `db`: in the action's transaction, so both commit or neither
   * does; or, for an action that had none to share (it changed nothing), on its own. Returns
   * the row's id, which a later transaction of the action passes to bring the row up to date.
   */
  async write(entry: AuditRecord, db: Queryable = this.entries.manager, id?: number) {
    const result = await db.query(WRITE_ENTRY, [
      id ?? null,
      entry.actor,
      entry.action,
      entry.target,
      JSON.stringify(entry.parameters),
    ]);
    // A pg client answers a result, a TypeORM EntityManager the rows.
    const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as {
      id: string;
    }[];
    return Number(rows[0].id);
  }

  /** The action as a log line, once it is done. */
  logLine(entry: AuditRecord): void {
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
