import { exitOnStartupError, loadEnvironment, startWorker } from './bootstrap.js';

try {
  const { env } = loadEnvironment();
  await startWorker(env);
} catch (error) {
  exitOnStartupError('worker', error);
}
