import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verify, WebhookVerificationError } from '@pgwq/receiver';
import { SequenceTracker, Verdict } from './sequence-tracker.js';

export interface ReceiverOptions {
  port: number;
  host: string;
  /** The webhook's `whsec_` secret; without it signatures are not checked. */
  secret?: string;
  /** The share of requests (0–1) answered 500 on purpose, so the sender retries. */
  failRate: number;
  /** How long to wait before answering each request. */
  delayMs: number;
}

/** Counts over every request, for the summary. */
export interface ReceiverTotals {
  arrivals: number;
  accepted: number;
  failedOnPurpose: number;
  badSignatures: number;
  /** Requests without the webhook-topic/-partition-key/-sequence headers. */
  untracked: number;
}

/** Bodies larger than this are refused; the queue's default payload limit is 1 MiB. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const EXCERPT_CHARS = 60;

/** Request data goes to a terminal: control characters (escape sequences) become '?'. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const printable = (text: string) => text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');

function excerpt(body: string): string {
  const flat = printable(body);
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS - 1)}…` : flat;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function describe(verdict: Verdict): string {
  switch (verdict.kind) {
    case 'in-order':
      return 'in order';
    case 'gap':
      return verdict.missingFrom === verdict.missingTo
        ? `GAP: #${verdict.missingFrom} never arrived`
        : `GAP: #${verdict.missingFrom}-#${verdict.missingTo} never arrived`;
    case 'duplicate':
      return 'duplicate (seen before)';
    case 'order-break':
      return `ORDER BREAK: arrived after #${verdict.after}`;
  }
}

/** Local wall-clock time with milliseconds, as people read it next to other logs. */
function clock(): string {
  const now = new Date();
  const two = (n: number) => String(n).padStart(2, '0');
  const ms = String(now.getMilliseconds()).padStart(3, '0');
  return `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}.${ms}`;
}

/**
 * A local webhook receiver for a first try: verifies each signature, follows each partition's
 * sequence, prints one line per request through `print`, and can fail or slow down on purpose.
 */
export class WebhookReceiver {
  readonly tracker = new SequenceTracker();
  readonly totals: ReceiverTotals = {
    arrivals: 0,
    accepted: 0,
    failedOnPurpose: 0,
    badSignatures: 0,
    untracked: 0,
  };
  readonly startedAt = Date.now();
  private readonly server: http.Server;

  constructor(
    private readonly options: ReceiverOptions,
    private readonly print: (line: string) => void,
  ) {
    if (options.secret !== undefined && !/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(options.secret)) {
      throw new Error('the secret must be whsec_ followed by base64 (as the API gives it)');
    }
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  /** Listens and returns the URL it answers on (any path). */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, resolve);
    });
    const { address, port, family } = this.server.address() as AddressInfo;
    return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}/`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { status, note, where } = this.judge(req, body, size);
      const answer = () => {
        const hungUp = req.socket.destroyed;
        this.print(
          `${clock()}  ${where}  -> ${status}  ${note}` +
            (hungUp ? ' (the sender hung up before the answer)' : '') +
            (body ? `  ${excerpt(body)}` : ''),
        );
        if (!hungUp) {
          res.writeHead(status, { 'content-type': 'text/plain' });
          res.end(`${note}\n`);
        }
      };
      if (this.options.delayMs > 0) setTimeout(answer, this.options.delayMs);
      else answer();
    });
  }

  /** Decides the answer to one request and updates the counts. */
  private judge(
    req: http.IncomingMessage,
    body: string,
    size: number,
  ): { status: number; note: string; where: string } {
    this.totals.arrivals += 1;
    const topic = header(req, 'webhook-topic');
    const partition = header(req, 'webhook-partition-key');
    const sequenceText = header(req, 'webhook-sequence');
    const sequence = Number(sequenceText);
    const tracked =
      topic !== undefined &&
      partition !== undefined &&
      sequenceText !== undefined &&
      Number.isSafeInteger(sequence) &&
      sequence > 0;
    const where = tracked
      ? printable(
          `${topic} ${partition} #${sequence} (try ${header(req, 'webhook-attempt') ?? '?'}, ` +
            `id ${header(req, 'webhook-id') ?? '?'})`,
        )
      : printable(`${req.method} ${req.url}`);

    if (req.method !== 'POST') return { status: 405, note: 'only POST is received', where };
    if (size > MAX_BODY_BYTES) return { status: 413, note: 'body too large', where };
    if (this.options.secret) {
      // Both signatures (the receiver kit): the body's, and the ordering headers', so a captured
      // delivery sent again with another webhook-sequence does not pass (nor show as a gap).
      try {
        verify({ headers: req.headers, body }, this.options.secret);
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        this.totals.badSignatures += 1;
        return { status: 401, note: `BAD SIGNATURE: ${error.message}`, where };
      }
    }
    if (Math.random() < this.options.failRate) {
      this.totals.failedOnPurpose += 1;
      return { status: 500, note: 'failed on purpose (--fail-rate)', where };
    }
    this.totals.accepted += 1;
    if (!tracked) {
      this.totals.untracked += 1;
      return { status: 204, note: 'no webhook-topic/-partition-key/-sequence: not tracked', where };
    }
    const previousText = header(req, 'webhook-previous-sequence');
    const previous =
      previousText === undefined
        ? undefined
        : previousText === ''
          ? null
          : Number(previousText) || undefined;
    return {
      status: 204,
      note: describe(this.tracker.observe(topic, partition, sequence, previous)),
      where,
    };
  }

  /** The lines printed on Ctrl-C. */
  summary(): string[] {
    const t = this.totals;
    const partitions = this.tracker.report();
    const sum = (pick: (p: (typeof partitions)[number]) => number) =>
      partitions.reduce((n, p) => n + pick(p), 0);
    const seconds = Math.round((Date.now() - this.startedAt) / 1000);
    const lines = [
      `--- summary after ${seconds} s ---`,
      `requests ${t.arrivals}: accepted ${t.accepted}, failed on purpose ${t.failedOnPurpose}, ` +
        `bad signatures ${t.badSignatures}, untracked ${t.untracked}`,
      `partitions ${partitions.length}: duplicates ${sum((p) => p.duplicates)}, ` +
        `gaps ${sum((p) => p.gaps)}, order breaks ${sum((p) => p.orderBreaks)}`,
    ];
    if (partitions.length > 0) {
      const rows = partitions.map((p) => [
        printable(`${p.topic} ${p.partition}`),
        String(p.accepted),
        String(p.highest),
        String(p.duplicates),
        String(p.gaps),
        String(p.orderBreaks),
        p.missing.map(([a, b]) => (a === b ? `#${a}` : `#${a}-#${b}`)).join(' ') || '-',
      ]);
      const head = ['partition', 'accepted', 'highest', 'duplicates', 'gaps', 'order breaks'];
      const table = [[...head, 'still missing'], ...rows];
      const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
      for (const row of table) {
        lines.push(
          row
            .map((cell, i) => cell.padEnd(widths[i]))
            .join('  ')
            .trimEnd(),
        );
      }
    }
    return lines;
  }
}
