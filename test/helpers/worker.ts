import { ChildProcess, spawn } from 'node:child_process';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { Env, WorkerModule } from '../../src/app.module.js';
import { SCHEMA_ENV } from './db.js';
import { built, childCwd } from './scratch.js';

/** Worker settings that keep the delivery tests quick. */
export const FAST_WORKER_ENV: Env = {
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  DELIVERY_TIMEOUT_MS: '1000',
  POLL_INTERVAL_MS: '200',
  BACKOFF_FACTOR: '0.1',
  MAX_RETRIES: '5',
  // Tests run several workers at once: no metrics server unless a test asks for one.
  METRICS_PORT: '0',
};

/** A delivery worker inside the test process (the same WorkerModule as `node dist/worker.js`). */
export async function startInProcessWorker(
  databaseUrl: string,
  env: Env = {},
): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(
    WorkerModule.forRoot({ ...SCHEMA_ENV, ...FAST_WORKER_ENV, DATABASE_URL: databaseUrl, ...env }),
    { logger: ['error'], abortOnError: false },
  );
  await app.init();
  return app;
}

/** A real `node dist/worker.js` child process; its output is kept in `output`. */
export class WorkerProcess {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  /** `fileLimit`: the worker runs under `ulimit -n fileLimit` (its file descriptors). */
  static spawn(databaseUrl: string, env: Env = {}, fileLimit?: number): WorkerProcess {
    const [command, args] =
      fileLimit === undefined
        ? [process.execPath, [built('worker.js')]]
        : [
            '/bin/sh',
            [
              '-c',
              `ulimit -n ${fileLimit} && exec "$0" "$1"`,
              process.execPath,
              built('worker.js'),
            ],
          ];
    const child = spawn(command, args, {
      cwd: childCwd(),
      env: {
        PATH: process.env.PATH,
        ...SCHEMA_ENV,
        ...FAST_WORKER_ENV,
        DATABASE_URL: databaseUrl,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new WorkerProcess(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Kills it if still running (test cleanup). */
  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
