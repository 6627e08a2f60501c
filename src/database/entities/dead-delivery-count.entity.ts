import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';

/**
 * A share of a webhook's dead-delivery count: +1 / -1 rows appended by triggers as deliveries go
 * into or out of `dead`; the count is the sum of the webhook's rows (see the QueueGauges
 * migration). No foreign key (see there); rows of a deleted webhook are dropped by the fold.
 * Read by the metrics only.
 */
@Entity('dead_delivery_counts')
@Index('dead_delivery_counts_webhook_id_idx', ['webhookId'])
export class DeadDeliveryCount {
  @PrimaryColumn('bigint', {
    generated: 'identity',
    generatedIdentity: 'BY DEFAULT',
    primaryKeyConstraintName: 'dead_delivery_counts_pkey',
    transformer: bigintToNumber,
  })
  id: number;

  @Column('integer', { name: 'webhook_id' })
  webhookId: number;

  @Column('bigint', { transformer: bigintToNumber })
  dead: number;
}
