import { EntityManager } from 'typeorm';
import { Delivery } from '../database/entities/delivery.entity.js';

/** A delivery with its message's event type (deliveries do not copy it). */
export type DeliveryWithType = Delivery & { eventType: string | null };

/**
 * Each delivery with its message's event_type: one primary-key lookup per page of deliveries
 * (never the payloads, which a join through the entity would load).
 */
export async function withEventTypes(
  manager: EntityManager,
  deliveries: Delivery[],
): Promise<DeliveryWithType[]> {
  if (deliveries.length === 0) return [];
  const ids = [...new Set(deliveries.map((d) => d.messageId))];
  const rows = await manager.query<{ id: string; event_type: string | null }[]>(
    `SELECT id::text, event_type FROM messages WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  const types = new Map(rows.map((row) => [Number(row.id), row.event_type]));
  return deliveries.map((d) => Object.assign(d, { eventType: types.get(d.messageId) ?? null }));
}
