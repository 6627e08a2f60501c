import { exitOnStartupError, loadEnvironment, startWorker } from './bootstrap.js';

try {
  await startWorker(loadEnvironment());
} catch (error) {
  exitOnStartupError('worker', error);
}
