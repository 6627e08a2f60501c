import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy between a client and PostgreSQL that can fail the network in the ways the
 * delivery path must survive. It reads just enough of the wire protocol (message type and
 * length; the SQL of Parse messages) to recognise one statement.
 *
 * - `cutAfterReply(sql)`: the next time a client runs `sql` (a Bind of a statement parsed with
 *   that text), the server's whole reply, up to and including ReadyForQuery (so the implicit
 *   transaction has committed), is dropped and both sockets are reset. The client sees a
 *   connection reset where the server saw a success: a lost reply.
 * - `freeze()`: every connection, open or new, stops forwarding in both directions and never
 *   closes (a black hole, as a dead route or a paused VM looks); `thaw()` lets new connections
 *   through again while the frozen ones stay dead.
 */
export class PgProxy {
  url = '';
  /** How many replies `cutAfterReply` dropped. */
  cuts = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly frozen = new Set<net.Socket>();
  private cutSql: string | undefined;
  private frozenForNew = false;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** A proxy in front of the server of `databaseUrl`; `url` is the same URL through the proxy. */
  static async start(databaseUrl: string): Promise<PgProxy> {
    const target = new URL(databaseUrl);
    const proxy = new PgProxy(target.hostname, Number(target.port || 5432));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const via = new URL(databaseUrl);
    via.hostname = '127.0.0.1';
    via.port = String((proxy.server.address() as AddressInfo).port);
    proxy.url = via.toString();
    return proxy;
  }

  cutAfterReply(sql: string): void {
    this.cutSql = sql;
  }

  freeze(): void {
    this.frozenForNew = true;
    for (const socket of this.sockets) this.frozen.add(socket);
  }

  thaw(): void {
    this.frozenForNew = false;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => {
        this.sockets.delete(socket);
        this.frozen.delete(socket);
      });
      socket.on('error', () => undefined);
    }
    if (this.frozenForNew) {
      this.frozen.add(client);
      this.frozen.add(upstream);
    }
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      if (!this.frozen.has(client)) end();
    });
    upstream.on('close', () => {
      if (!this.frozen.has(upstream)) end();
    });

    const statements = new Map<string, string>();
    let startupDone = false;
    let swallowing = false;
    const fromClient = new MessageReader(false);
    const fromServer = new MessageReader(true);

    client.on('data', (chunk: Buffer) => {
      if (this.frozen.has(client)) return;
      for (const message of fromClient.push(chunk)) {
        if (!startupDone) {
          startupDone = true; // the startup packet (no SSL is asked for)
        } else if (message.type === 'P') {
          const [name, sql] = cStrings(message.body, 2);
          statements.set(name, sql);
        } else if (message.type === 'B' && this.cutSql !== undefined) {
          const [, statement] = cStrings(message.body, 2);
          if (statements.get(statement) === this.cutSql) {
            this.cutSql = undefined;
            swallowing = true;
          }
        }
      }
      upstream.write(chunk);
    });

    upstream.on('data', (chunk: Buffer) => {
      if (this.frozen.has(upstream)) return;
      if (!swallowing) {
        fromServer.push(chunk); // keep the framing in step
        client.write(chunk);
        return;
      }
      for (const message of fromServer.push(chunk)) {
        if (message.type === 'Z') {
          // The reply is complete and the transaction committed: lose it.
          this.cuts += 1;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
      }
    });
  }
}

interface Message {
  type: string;
  body: Buffer;
}

/** Splits a byte stream into PostgreSQL protocol messages (the client's first one has no type). */
class MessageReader {
  private buffer = Buffer.alloc(0);
  private typed: boolean;

  constructor(typedFromStart: boolean) {
    this.typed = typedFromStart;
  }

  push(chunk: Buffer): Message[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const messages: Message[] = [];
    for (;;) {
      const header = this.typed ? 5 : 4;
      if (this.buffer.length < header) break;
      const length = this.buffer.readInt32BE(this.typed ? 1 : 0);
      const total = (this.typed ? 1 : 0) + length;
      if (this.buffer.length < total) break;
      messages.push({
        type: this.typed ? String.fromCharCode(this.buffer[0]) : '',
        body: this.buffer.subarray(header, total),
      });
      this.buffer = this.buffer.subarray(total);
      this.typed = true;
    }
    return messages;
  }
}

/** The first `count` NUL-terminated strings of a message body. */
function cStrings(body: Buffer, count: number): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = body.indexOf(0, start);
    out.push(body.toString('utf8', start, end));
    start = end + 1;
  }
  return out;
}
