import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';
import { Delivery } from './delivery.entity.js';

/**
 * An attempt kept as a row of its own: every attempt but a delivered delivery's successful one,
 * which stays on its delivery (Delivery.deliveredAttemptId and the columns beside it).
 */
@Entity('logged_attempts')
@Index('logged_attempts_delivery_id_idx', ['deliveryId', 'id'])
export class LoggedAttempt {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'logged_attempts_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  @Column('bigint', { name: 'delivery_id', transformer: bigintToNumber })
  deliveryId: number;

  @ManyToOne(() => Delivery, { onDelete: 'CASCADE' })
  @JoinColumn({
    name: 'delivery_id',
    foreignKeyConstraintName: 'logged_attempts_delivery_id_fkey',
  })
  delivery?: Delivery;

  @Column('integer')
  attempt: number;

  @Column('timestamptz', { name: 'started_at' })
  startedAt: Date;

  @Column('integer', { name: 'duration_ms' })
  durationMs: number;

  @Column('integer', { name: 'status_code', nullable: true })
  statusCode: number | null;

  @Column('text', { nullable: true })
  error: string | null;

  /** The first bytes of the response body, for diagnosis. */
  @Column('text', { name: 'response_body', nullable: true })
  responseBody: string | null;
}
