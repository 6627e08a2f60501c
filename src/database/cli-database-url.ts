import { StartupError } from '../common/startup-error.js';
import { loadConfig, loadDotEnv } from '../config/app-config.js';
import { LOCAL_DATA_DIR, runningServer } from './embedded-postgres.js';

/**
 * The database of the command-line tools (npm run migration:*, the TypeORM CLI): DATABASE_URL
 * from the environment or .env, else the embedded PostgreSQL that `npm start` or `npm run db`
 * is running in .data/postgres. `onFallback` hears when it is the latter.
 */
export function cliDatabaseUrl(onFallback?: (line: string) => void): string {
  loadDotEnv();
  const configured = loadConfig(process.env).databaseUrl;
  if (configured) return configured;
  const local = runningServer(LOCAL_DATA_DIR);
  if (!local) {
    throw new StartupError(
      `DATABASE_URL is not set and no embedded PostgreSQL is running in ${LOCAL_DATA_DIR} ` +
        '(npm start or npm run db runs one)',
    );
  }
  onFallback?.('DATABASE_URL is not set: using the embedded PostgreSQL of npm start');
  return local.url;
}
