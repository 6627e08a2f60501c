/** What a message is, for pgwq_publish. */
export interface PublishInput {
  topic: string;
  partitionKey: string;
  payload: unknown;
  eventType?: string | null;
  idempotencyKey?: string | null;
}

export interface PublishOptions {
  /** The queue's schema (DATABASE_SCHEMA), when your connection's search_path does not reach it. */
  schema?: string;
}

/** A `pg` Client or PoolClient, inside your BEGIN … COMMIT. */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/** A TypeORM EntityManager (manager of a transaction) or QueryRunner: `query` returns the rows. */
export interface TypeOrmQueryable {
  query(query: string, parameters?: unknown[]): Promise<unknown>;
}

/** A Knex transaction (`knex.transaction(async (trx) => …)`) on PostgreSQL. */
export interface KnexTransaction {
  raw(
    sql: string,
    bindings: readonly unknown[],
  ): PromiseLike<{ rows: Array<Record<string, unknown>> }>;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

function publishFunction(options: PublishOptions): string {
  if (options.schema === undefined) return 'pgwq_publish';
  if (!SCHEMA.test(options.schema)) {
    throw new Error(`schema must be a lower-case identifier (got "${options.schema}")`);
  }
  return `${options.schema}.pgwq_publish`;
}

function values(m: PublishInput): unknown[] {
  return [
    m.topic,
    m.partitionKey,
    JSON.stringify(m.payload),
    m.eventType ?? null,
    m.idempotencyKey ?? null,
  ];
}

function messageId(rows: unknown): number {
  const row = Array.isArray(rows) ? (rows[0] as { id?: unknown } | undefined) : undefined;
  if (row?.id === undefined || row.id === null) throw new Error('pgwq_publish returned no id');
  return Number(row.id);
}

/**
 * Publishes in the transaction `client` is in (pg): nothing is sent unless it commits. Returns the
 * message's id (the first message's id when the idempotency key was used before).
 */
export async function publishWithPg(
  client: PgQueryable,
  message: PublishInput,
  options: PublishOptions = {},
): Promise<number> {
  const { rows } = await client.query(
    `SELECT ${publishFunction(options)}($1, $2, $3::jsonb, $4, $5) AS id`,
    values(message),
  );
  return messageId(rows);
}

/** publishWithPg for TypeORM: pass the transaction's EntityManager or your QueryRunner. */
export async function publishWithTypeOrm(
  manager: TypeOrmQueryable,
  message: PublishInput,
  options: PublishOptions = {},
): Promise<number> {
  return messageId(
    await manager.query(
      `SELECT ${publishFunction(options)}($1, $2, $3::jsonb, $4, $5) AS id`,
      values(message),
    ),
  );
}

/** publishWithPg for Knex: pass the transaction (`trx`). */
export async function publishWithKnex(
  trx: KnexTransaction,
  message: PublishInput,
  options: PublishOptions = {},
): Promise<number> {
  const { rows } = await trx.raw(
    `SELECT ${publishFunction(options)}(?, ?, ?::jsonb, ?, ?) AS id`,
    values(message),
  );
  return messageId(rows);
}
