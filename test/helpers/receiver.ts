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
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    public handler: Handler,
  ) {}

  static async start(handler: Handler = () => ({ status: 204 })): Promise<Receiver> {
    let receiver: Receiver | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const arrival = {
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
          at: Date.now(),
        };
        receiver!.arrivals.push(arrival);
        void Promise.resolve(receiver!.handler(arrival)).then(
          (reply) => {
            if (reply === 'hang') return;
            res.writeHead(reply.status, reply.headers);
            res.end(reply.body);
          },
          () => res.destroy(),
        );
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new Receiver(server, `http://127.0.0.1:${port}/hook`, handler);
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
