import pg from 'pg';

/** Background work a worker does besides delivering, in small batches. */
export interface MaintenanceTask {
  /** For log lines. */
  readonly name: string;
  /** Its advisory lock: one batch of a task at a time across all workers. */
  readonly lockKey: number;
  /**
   * One small unit of work inside the caller's transaction (short, so it holds few locks for
   * little time). Returns true when there may be more to do right away.
   */
  runBatch(client: pg.ClientBase): Promise<boolean>;
}
