import 'reflect-metadata';
import type pg from 'pg';
import { DataSource, DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities/index.js';
import { MIGRATIONS } from './migrations/index.js';

/**
 * The one TypeORM configuration: the app, the migration commands and the tests build on it.
 * `extra` goes to its pg.Pool: the app's time limits, and the search_path of DATABASE_SCHEMA
 * (TypeORM then finds its tables, the migrations table included, through current_schema()).
 */
export function dataSourceOptions(
  databaseUrl: string,
  extra: pg.PoolConfig = {},
): DataSourceOptions {
  return {
    type: 'postgres',
    url: databaseUrl,
    extra,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
  };
}

type MigrationOptions = Parameters<DataSource['runMigrations']>[0];

/**
 * The DataSource that migrates (the CLI, `npm start`, the tests' template): it first checks that
 * it has a session of its own. A migration may set session state (`SET lock_timeout`, a long
 * index build outside a transaction) and holds DDL locks; through a transaction-mode pooler that
 * state lands on a server connection other clients then get, and the pooler's timeouts can cut
 * a long statement off. So it needs a direct or session-mode connection, and says so.
 */
export class MigrationDataSource extends DataSource {
  override async runMigrations(options?: MigrationOptions) {
    await this.requireOwnSession();
    return super.runMigrations(options);
  }

  override async undoLastMigration(options?: MigrationOptions) {
    await this.requireOwnSession();
    return super.undoLastMigration(options);
  }

  /**
   * A session setting made by one statement must still be there in the next, even while another
   * connection holds a transaction open. Through a transaction-mode pooler that other connection
   * gets the server connection the first statement ran on (PgBouncer hands back the most recently
   * used one), so the next statement runs elsewhere and the setting is gone. A pooler that hands
   * out server connections in another order may go unnoticed; docs/pooler.md says it either way.
   */
  private async requireOwnSession(): Promise<void> {
    const session = this.createQueryRunner();
    const other = this.createQueryRunner();
    try {
      await session.query(`SELECT set_config('pgwq.migration_session', 'kept', false)`);
      await other.startTransaction();
      await other.query('SELECT 1');
      const [row] = await session.query(
        `SELECT current_setting('pgwq.migration_session', true) AS kept`,
      );
      if (row.kept !== 'kept') {
        throw new Error(
          'migrations need a direct or session-mode connection: this DATABASE_URL goes through ' +
            'a transaction-mode pooler (a session setting was gone in the next statement). ' +
            'Migrate with DATABASE_URL pointing at the database itself or a session-mode pool.',
        );
      }
    } finally {
      if (other.isTransactionActive) await other.rollbackTransaction();
      await other.release();
      await session.release();
    }
  }
}
