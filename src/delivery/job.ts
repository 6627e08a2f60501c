import pg from 'pg';
import { DATABASE_TIMEOUTS } from '../database/pool-options.js';
import type { ClaimedLine } from './delivery.sql.js';

/** One claimed line whose head is being delivered by this worker. */
export interface Job {
  line: ClaimedLine;
  controller: AbortController;
  /**
   * Local time until which the lease is surely ours: the time the claim, keep or renewal was
   * sent plus the lease. The database wrote the expiry from its clock at the write, which is
   * later, so this errs on the safe side whatever the two clocks say.
   */
  leaseDeadline: number;
  /** A renewal in flight; the result is recorded only after it settled. */
  renewing?: Promise<void>;
  /** Why this worker no longer owns the line (record nothing), once it does not. */
  lost?: string;
  /** Shutdown released the lease: record nothing. */
  abandoned: boolean;
  done?: Promise<void>;
}

/** A line given back to the claim queue without an attempt, due again after delayMs. */
export interface Release {
  line: ClaimedLine;
  /** The head the line must still be at for the release to apply. */
  head: string;
  delayMs: number;
}

/**
 * Client-side limits of the loop's own queries, below the pool's (DATABASE_TIMEOUTS). A claim
 * waits on no lock (SKIP LOCKED), so an answer that has not come in this time is not coming:
 * the pool drops the connection and the loop retries on a fresh one instead of hanging on a
 * dead one (a black-holed connection otherwise waits for the kernel, many minutes).
 */
export const CLAIM_QUERY_TIMEOUT_MS = 5_000;
/**
 * The same for the fenced writes (record, renewal, skip, release), which may wait on a
 * producer's lock on the line, up to the lock timeout. One that times out is retried or left to
 * lapse, which is safe because every one of them is idempotent.
 */
export const WRITE_QUERY_TIMEOUT_MS = DATABASE_TIMEOUTS.lockMs + 5_000;

/**
 * A query with its own `query_timeout` (pg reads it per query; @types/pg lacks it). Every query
 * goes unnamed, which a transaction-mode pooler passes: the hot statements are PL/pgSQL
 * functions (delivery.sql.ts), whose plans the server session caches, so only the short call is
 * parsed and planned each time (about 0.1 ms a record; a delivery run does not show it,
 * docs/pooler.md).
 */
export function withQueryTimeout(config: pg.QueryConfig, ms: number): pg.QueryConfig {
  return Object.assign(config, { query_timeout: ms });
}

/**
 * The slack a lease keeps beyond one request: the round trip that took or renewed it, the
 * record after the request, timers that fire late.
 */
export function leaseMarginMs(deliveryTimeoutMs: number): number {
  return Math.max(1000, Math.round(deliveryTimeoutMs / 4));
}

/** A fresh lease: one request plus twice the margin. */
export function leaseMsFor(deliveryTimeoutMs: number): number {
  return deliveryTimeoutMs + 2 * leaseMarginMs(deliveryTimeoutMs);
}

/** Why a fenced write found the line no longer ours. */
export function lostReason(lineExists: boolean): string {
  return lineExists ? 'lease lost to another worker' : 'the line is gone (webhook deleted)';
}

/**
 * The identifying fields of a delivery's log line: fields of the JSON object with
 * LOG_FORMAT=json, after the message in text. Never the payload or secrets.
 */
export function fields(line: ClaimedLine, attempt?: number) {
  return {
    webhook_id: line.webhook_id,
    partition_key: line.partition_key,
    sequence: Number(line.sequence),
    delivery_id: line.delivery_id === null ? null : Number(line.delivery_id),
    message_id: line.message_id === null ? null : Number(line.message_id),
    ...(attempt === undefined ? {} : { attempt }),
  };
}
