import http, { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Arrival {
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the request had fully arrived. */
  at: number;
}

/** What the receiver answers; `hang` never answers (the sender's timeout ends it). */
export type Reply = { status: number; body?: string; headers?: Record<string, string> } | 'hang';

export type Handler = (arrival: Arrival) => Reply | Promise<Reply>;

/** A real webhook receiver: an http server on 127.0.0.1, recording every request. */
export class Receiver {
  readonly arrivals: Arrival[] = [];
  url = '';
  private readonly server: http.Server;

  private constructor(public handler: Handler) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const arrival = { headers: req.headers, body, at: Date.now() };
        this.arrivals.push(arrival);
        void Promise.resolve(this.handler(arrival)).then(
          (reply) => {
            if (reply === 'hang') return;
            res.writeHead(reply.status, reply.headers);
            res.end(reply.body);
          },
          () => res.destroy(),
        );
      });
    });
    this.server.keepAliveTimeout = 60_000;
  }

  static async start(handler: Handler = () => ({ status: 204 })): Promise<Receiver> {
    const receiver = new Receiver(handler);
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.server.address() as AddressInfo;
    receiver.url = `http://127.0.0.1:${port}/hook`;
    return receiver;
  }

  /** Arrivals whose header `name` equals `value` (e.g. one partition). */
  where(name: string, value: string): Arrival[] {
    return this.arrivals.filter((a) => a.headers[name] === value);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
