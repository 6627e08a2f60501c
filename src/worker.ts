import v8 from 'node:v8';
import { exitOnStartupError, loadEnvironment, startWorker } from './worker-bootstrap.js';

/**
 * A worker's live heap is some 30–40 MB, yet V8 let it grow to 150 MB and more of garbage
 * between two full collections (each delivery allocates tens of kB that die young, and some of
 * it survives into the old space): the heap may grow by 20 % of what the last full collection
 * kept before the next one runs. A few more short collections, RSS under 150 MB at any backlog
 * (bench/worker-rss.mjs). An operator's own --heap-growing-percent or --max-old-space-size
 * (NODE_OPTIONS or the command line) wins.
 */
const HEAP_GROWING_PERCENT = 20;
const own = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
if (!/--(heap[-_]growing[-_]percent|max[-_]old[-_]space[-_]size)/.test(own)) {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

try {
  await startWorker(loadEnvironment());
} catch (error) {
  exitOnStartupError('worker', error);
}
