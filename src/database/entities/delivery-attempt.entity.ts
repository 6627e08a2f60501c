import { ViewColumn, ViewEntity } from 'typeorm';
import { bigintToNumber } from './bigint.transformer.js';

/**
 * One POST of a delivery and what came of it: the view delivery_attempts of logged_attempts and
 * the successful attempts kept on their deliveries (migration SuccessOnDelivery1795633465400,
 * which owns its definition).
 */
@ViewEntity({ name: 'delivery_attempts', synchronize: false })
export class DeliveryAttempt {
  @ViewColumn({ transformer: bigintToNumber })
  id: number;

  @ViewColumn({ name: 'delivery_id', transformer: bigintToNumber })
  deliveryId: number;

  @ViewColumn()
  attempt: number;

  @ViewColumn({ name: 'started_at' })
  startedAt: Date;

  @ViewColumn({ name: 'duration_ms' })
  durationMs: number;

  @ViewColumn({ name: 'status_code' })
  statusCode: number | null;

  @ViewColumn()
  error: string | null;

  /** The first bytes of the response body, for diagnosis. */
  @ViewColumn({ name: 'response_body' })
  responseBody: string | null;
}
