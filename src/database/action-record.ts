import { AsyncLocalStorage } from 'node:async_hooks';

/** What runs a statement on a transaction's connection: a pg client or a TypeORM EntityManager. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/**
 * Writes the record of the operator action in progress (the audit log's row) on `db`, inside
 * the action's transaction, saying what the action has done so far (`outcome`: the answer's
 * fields, e.g. `{ redriven: 3 }`). Called again in a later transaction of the same action, it
 * brings that record up to date in that transaction.
 */
export type ActionRecorder = (db: Queryable, outcome?: Record<string, unknown>) => Promise<void>;

const recorders = new AsyncLocalStorage<ActionRecorder>();

/** Runs `work` (an operator action) with `recorder` as the record its transactions write. */
export function withActionRecorder<T>(recorder: ActionRecorder, work: () => T): T {
  return recorders.run(recorder, work);
}

/**
 * In an action's transaction, before it commits: writes the operator's record of the action in
 * that same transaction, so both commit or neither does (DESIGN §12). Nothing outside an audited
 * request (the worker, a test): an action's code says where its record belongs, the audit log
 * knows who acted and what to write.
 */
export async function recordAction(
  db: Queryable,
  outcome: Record<string, unknown> = {},
): Promise<void> {
  await recorders.getStore()?.(db, outcome);
}
