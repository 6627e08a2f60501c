import { cliDatabaseUrl } from './cli-database-url.js';
import { dataSourceOptions, MigrationDataSource } from './data-source-options.js';
import { databaseSchemaFrom, searchPathOption } from './schema.js';

/**
 * For the plain TypeORM CLI: `npx typeorm migration:show -d dist/database/data-source.js`
 * (also migration:run and migration:revert). The database is the one npm run migration:run uses.
 * The app and npm's scripts build their own from data-source-options.ts.
 */
export default new MigrationDataSource(
  dataSourceOptions(cliDatabaseUrl(), searchPathOption(databaseSchemaFrom(process.env))),
);
