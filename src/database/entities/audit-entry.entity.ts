import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';

/** One operator action: who (an API key's name, never the key), what, on what, with what. */
@Entity('audit_log')
@Index('audit_log_target_idx', ['target', 'id'])
export class AuditEntry {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'audit_log_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  /** For retention (RETENTION_AUDIT_SECONDS). */
  @Index('audit_log_at_idx')
  @Column('timestamptz', { default: () => 'now()' })
  at: Date;

  @Column('text')
  actor: string;

  @Column('text')
  action: string;

  /** What it acted on: `webhook:3` (a line's key is in the parameters), `dead-letter`. */
  @Column('text')
  target: string;

  @Column('jsonb', { default: {} })
  parameters: Record<string, unknown>;
}
