import type { WorkerProcess } from './worker.js';

/**
 * Chaos tied to how far a run got, not to the clock: `act` runs each time `progress()` passes
 * another `step` (checked every 20 ms), so however fast the queue becomes, the kills and
 * terminations still land mid-run. `times` counts the acts; `stop()` ends the loop and waits for
 * an act under way.
 */
export function onProgress(
  progress: () => number,
  step: number,
  act: () => void | Promise<void>,
): { readonly times: number; stop(): Promise<void> } {
  let running = true;
  let times = 0;
  const loop = (async () => {
    while (running) {
      if (progress() >= (times + 1) * step) {
        await act();
        times += 1;
      } else {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    get times() {
      return times;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** SIGKILLs one of the workers still running, chosen at random (none if none runs). */
export function killOneAtRandom(workers: WorkerProcess[]): void {
  const running = workers.filter((w) => w.running);
  running[Math.floor(Math.random() * running.length)]?.kill('SIGKILL');
}
