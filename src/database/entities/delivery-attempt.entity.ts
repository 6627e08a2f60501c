import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';
import { Delivery } from './delivery.entity.js';

/** One POST of a delivery and what came of it. */
@Entity('delivery_attempts')
@Index('delivery_attempts_delivery_id_idx', ['deliveryId', 'id'])
// Retention's way to delivered deliveries, oldest first (src/maintenance/retention.ts).
@Index('delivery_attempts_succeeded_idx', ['startedAt'], {
  where: 'status_code BETWEEN 200 AND 299',
})
export class DeliveryAttempt {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'delivery_attempts_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  @Column('bigint', { name: 'delivery_id', transformer: bigintToNumber })
  deliveryId: number;

  @ManyToOne(() => Delivery, { onDelete: 'CASCADE' })
  @JoinColumn({
    name: 'delivery_id',
    foreignKeyConstraintName: 'delivery_attempts_delivery_id_fkey',
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
