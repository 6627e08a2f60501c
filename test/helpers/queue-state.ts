import pg from 'pg';
import { Receiver } from './receiver.js';

/** The sequences that arrived for one partition, in arrival order. */
export function sequences(r: Receiver, key: string): number[] {
  return r.where('webhook-partition-key', key).map((a) => Number(a.headers['webhook-sequence']));
}

/** The delivery of a partition's message `sequence` to a webhook: id, status, attempts. */
export async function deliveryAt(pool: pg.Pool, webhookId: number, key: string, sequence: number) {
  const { rows } = await pool.query(
    `SELECT id::int, status, attempts FROM deliveries
     WHERE webhook_id = $1 AND partition_key = $2 AND sequence = $3`,
    [webhookId, key, sequence],
  );
  return rows[0] as { id: number; status: string; attempts: number };
}
