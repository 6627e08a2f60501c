import { Inbox, InboxResult, Queryable } from './inbox.js';
import {
  Delivery,
  verify,
  VerifyOptions,
  WebhookRequest,
  WebhookVerificationError,
} from './verify.js';

/** A `pg` Pool (or anything that lends a client with `query` and `release`). */
export interface ConnectionPool {
  connect(): Promise<Queryable & { release(error?: Error | boolean): void }>;
}

export interface ApplyOptions {
  pool: ConnectionPool;
  /** Default: `new Inbox()` (table pgwq_inbox). */
  inbox?: Inbox;
  /** Names your endpoint in the inbox (default "default"). */
  webhook?: string;
  /** Apply a message even when the one before it never came (default false: answer 409). */
  allowGap?: boolean;
  /** Your writes for one message, in the transaction the inbox recorded it in. */
  apply(tx: Queryable, delivery: Delivery): Promise<void>;
}

/** What to answer, and why. */
export interface Answer {
  status: number;
  /** `accepted`, `duplicate`, `gap` or `invalid`. */
  outcome: InboxResult['status'] | 'invalid';
  message: string;
}

/**
 * One delivery, start to end, in one transaction of your database: record it in the inbox, apply
 * it, commit. A duplicate is answered 200 and applied nothing; a gap 409 (nothing applied: the
 * queue retries it, and you decide what the missing message means). An error in `apply` rolls
 * everything back and is thrown (answer 500: the queue retries).
 */
export async function applyDelivery(delivery: Delivery, options: ApplyOptions): Promise<Answer> {
  const inbox = options.inbox ?? new Inbox();
  const client = await options.pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await inbox.accept(client, delivery, options);
    if (result.status === 'accepted') await options.apply(client, delivery);
    await client.query(result.status === 'accepted' ? 'COMMIT' : 'ROLLBACK');
    return answerFor(result, delivery);
  } catch (error) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw error;
  } finally {
    client.release(broken);
  }
}

/** verify, then applyDelivery: an invalid request is answered 401 and touches nothing. */
export async function receive(
  request: WebhookRequest,
  secret: string | readonly string[],
  options: ApplyOptions & VerifyOptions,
): Promise<Answer> {
  let delivery: Delivery;
  try {
    delivery = verify(request, secret, options);
  } catch (error) {
    if (error instanceof WebhookVerificationError) {
      return { status: 401, outcome: 'invalid', message: error.message };
    }
    throw error;
  }
  return applyDelivery(delivery, options);
}

function answerFor(result: InboxResult, d: Delivery): Answer {
  const where = `${d.topic} ${d.partitionKey} #${d.sequence}`;
  switch (result.status) {
    case 'accepted':
      return { status: 204, outcome: 'accepted', message: `${where} applied` };
    case 'duplicate':
      return {
        status: 200,
        outcome: 'duplicate',
        message: `${where} was applied before (up to #${result.lastSequence}): nothing done`,
      };
    case 'gap':
      return {
        status: 409,
        outcome: 'gap',
        message:
          `${where} follows #${result.expectedPrevious}, but the last applied is ` +
          `#${result.lastSequence}: nothing done`,
      };
  }
}
