import { resolve } from 'node:path';
import { StartupError } from './common/startup-error.js';
import { loadConfig } from './config/app-config.js';
import { cliDatabaseUrl } from './database/cli-database-url.js';
import { describeDatabase } from './database/database-check.js';
import {
  generateMigration,
  migrationStatus,
  revertLastMigration,
  runMigrations,
} from './database/migrate.js';
import { apiExposureProblem } from './security/api-exposure.js';

/**
 * `npm run migration:run` (node dist/migrate.js), `migration:show` (… show), `migration:revert`
 * (… revert) and `migration:generate -- Name` (… generate Name). The database is DATABASE_URL
 * (environment or .env), else the embedded PostgreSQL that `npm start` is running in
 * .data/postgres.
 */
const log = (line: string) => console.log(`[pgwq-migrate] ${line}`);

const databaseUrl = () => cliDatabaseUrl(log);

/**
 * Compose runs this before the API (it passes API_PUBLISH_ADDRESS to both): a configuration the
 * API would refuse stops the stack here, in one line, instead of an API container that restarts
 * in a loop.
 */
function checkApiExposure(): void {
  const config = loadConfig(process.env);
  if (config.apiPublishAddress === undefined) return;
  const problem = apiExposureProblem(config);
  if (problem) throw new StartupError(`the API would refuse to start: ${problem}`);
}

async function main(command = 'run', name?: string) {
  if (command === 'run') {
    checkApiExposure();
    const url = databaseUrl();
    const applied = await runMigrations(url, log);
    log(
      applied.length
        ? `applied ${applied.join(', ')} to ${describeDatabase(url)}`
        : `${describeDatabase(url)} is up to date`,
    );
  } else if (command === 'show') {
    const url = databaseUrl();
    const { applied, pending } = await migrationStatus(url);
    log(`${describeDatabase(url)}: ${applied.length} applied, ${pending.length} pending`);
    for (const name of applied) console.log(`  [X] ${name}`);
    for (const name of pending) console.log(`  [ ] ${name}`);
  } else if (command === 'revert') {
    const url = databaseUrl();
    const reverted = await revertLastMigration(url);
    log(reverted ? `reverted ${reverted}` : `no migration is applied on ${describeDatabase(url)}`);
  } else if (command === 'generate' && name) {
    const dir = resolve('src', 'database', 'migrations');
    const file = await generateMigration({ databaseUrl: databaseUrl(), name, dir });
    log(
      file
        ? `wrote ${file} and listed it in index.ts; read it, then npm run migration:run`
        : 'the database already matches the entities: nothing to generate',
    );
  } else {
    throw new StartupError(
      'usage: node dist/migrate.js [run | show | revert | generate <Name>] ' +
        '(npm run migration:run, migration:show, migration:revert, migration:generate -- <Name>)',
    );
  }
}

try {
  await main(...process.argv.slice(2));
} catch (error) {
  // One line: what failed, never a stack; a failing migration's message names its SQL error.
  console.error(`[pgwq-migrate] cannot migrate: ${(error as Error)?.message ?? error}`);
  process.exit(1);
}
