import { exitOnStartupError, loadEnvironment, startApi } from './bootstrap.js';

try {
  await startApi(loadEnvironment());
} catch (error) {
  exitOnStartupError('api', error);
}
