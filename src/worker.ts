import { exitOnStartupError, loadEnvironment, startWorker } from './worker-bootstrap.js';

try {
  await startWorker(loadEnvironment());
} catch (error) {
  exitOnStartupError('worker', error);
}
