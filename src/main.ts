import { exitOnStartupError, loadEnvironment, startApi } from './bootstrap.js';

try {
  const { env } = loadEnvironment();
  await startApi(env);
} catch (error) {
  exitOnStartupError('api', error);
}
