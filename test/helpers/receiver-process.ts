import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { eventually } from './eventually.js';

/** `npm run receiver` (node dist/receiver.js) as a child process, with its output kept. */
export class ReceiverProcess {
  output = '';
  url = '';
  readonly exited: Promise<number | null>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((done) => child.on('exit', (code) => done(code)));
  }

  /** Starts it (on a free port unless `--port` is given) and waits for its listening line. */
  static async start(args: string[]): Promise<ReceiverProcess> {
    const withPort = args.includes('--port') ? args : ['--port', '0', ...args];
    const child = spawn(process.execPath, [resolve('dist/receiver.js'), ...withPort], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const receiver = new ReceiverProcess(child);
    const listening = await eventually(
      () => /listening on (http:\S+)/.exec(receiver.output)?.[1] ?? receiver.ended,
      { what: 'the receiver to listen' },
    );
    if (listening === true) throw new Error(`the receiver did not start:\n${receiver.output}`);
    receiver.url = `${listening}hook`;
    return receiver;
  }

  /** Runs it to its end (for start-up errors) and returns its exit code and output. */
  static async run(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, [resolve('dist/receiver.js'), ...args], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const receiver = new ReceiverProcess(child);
    return { code: await receiver.exited, output: receiver.output };
  }

  private get ended(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The per-request lines printed so far (they carry an arrow to the status answered). */
  get arrivals(): string[] {
    return this.output.split('\n').filter((line) => line.includes('  -> '));
  }

  /** Ctrl-C: waits for the exit and returns the summary it printed. */
  async interrupt(): Promise<{ code: number | null; summary: string }> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    return { code, summary: this.output.slice(this.output.indexOf('--- summary')) };
  }

  async stop(): Promise<void> {
    if (!this.ended) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
