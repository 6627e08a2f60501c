import http from 'node:http';
import https from 'node:https';
import net, { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import axios, { AxiosAdapter, AxiosHeaders, AxiosInstance, isAxiosError } from 'axios';
import { AppConfig } from '../config/app-config.js';
import { addressRefusal, webhookLookup, webhookUrlAddressProblem } from '../security/ssrf-guard.js';
import { createWebhookResolver } from '../security/webhook-dns.js';

/** How much of a response body we keep with the attempt, for diagnosis. */
export const RESPONSE_BODY_CAP_BYTES = 1024;
export const USER_AGENT = 'pg-webhook-queue/0.1 (+https://www.standardwebhooks.com/)';

export interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/**
 * Connecting (TCP, and TLS for https) must finish within this, counted from the end of the DNS
 * lookup (bounded on its own, webhook-dns.ts), and within the request's own timeout: a host that
 * drops connection attempts fails in seconds and frees its slot, where the whole-request timeout
 * is sized for a receiver that is slow to answer.
 */
export const CONNECT_TIMEOUT_MS = 3000;

/** TCP keep-alive's first probe after this much silence (Node's default for a keep-alive agent). */
const KEEP_ALIVE_DELAY_MS = 1000;

/** What one POST came to. `error` is set for every failure, with or without a status. */
export interface WebhookResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  /**
   * No HTTP answer: a timeout, a connection refused, reset or timed out, a DNS failure (not an
   * address the SSRF guard refused, nor a request we aborted). What the circuit breakers count.
   */
  unreachable: boolean;
  responseBody: string | null;
  retryAfter: string | undefined;
  durationMs: number;
  /**
   * The address policy refused the connection (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false and the host
   * is, or now resolves to, a refused address): what was refused and why. Nothing was sent; not
   * the receiver's fault (DESIGN §10).
   */
  refused?: string;
}

/**
 * One POST per attempt, over keep-alive agents whose DNS lookup is the SSRF guard's, so the
 * address checked is the address connected to. Never throws: every failure is a result.
 */
@Injectable()
export class WebhookSender implements OnApplicationShutdown {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  /**
   * axios's http adapter and the configuration every request shares, merged once. Each call of
   * axios.request() merged it into its defaults again and flattened the result, about 45 KB of
   * garbage per request; on a hot partition the worker's CPU per message fell by a sixth without.
   */
  private readonly adapter: AxiosAdapter;
  private readonly requestDefaults: AxiosInstance['defaults'];

  constructor(private readonly config: AppConfig) {
    const lookup = webhookLookup(
      config.webhookAllowPrivateNetworks,
      createWebhookResolver(config.webhookDnsServers),
    );
    const connectTimeoutMs = Math.min(CONNECT_TIMEOUT_MS, config.deliveryTimeoutMs);
    this.httpAgent = withSocketSetup(
      new http.Agent({ keepAlive: true, keepAliveMsecs: KEEP_ALIVE_DELAY_MS, lookup }),
      connectTimeoutMs,
    );
    this.httpsAgent = withSocketSetup(
      new https.Agent({ keepAlive: true, keepAliveMsecs: KEEP_ALIVE_DELAY_MS, lookup }),
      connectTimeoutMs,
    );
    this.requestDefaults = axios.create({
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      maxRedirects: 0,
      // No `timeout`: send() bounds the whole exchange with its own deadline, which starts first
      // and so always fires first; axios's would only add a timer and a socket timeout per request.
      validateStatus: () => true,
      // The body is already the exact JSON text we signed, sent untouched (the adapter runs no
      // transforms), and the answer is a stream read up to its cap (readCapped).
      responseType: 'stream',
      decompress: true,
      proxy: false,
    }).defaults;
    this.adapter = axios.getAdapter('http');
  }

  /**
   * POSTs and reads at most RESPONSE_BODY_CAP_BYTES of the answer. The whole exchange (connect,
   * headers, body) is bounded by DELIVERY_TIMEOUT_MS; `signal` aborts it early (lease lost,
   * shutdown).
   */
  async send(request: WebhookRequest, signal: AbortSignal): Promise<WebhookResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    // node:net connects to an IP-literal host without calling the agent's lookup, so the SSRF
    // guard checks those here (a URL registered while private networks were allowed, or by SQL).
    const problem = webhookUrlAddressProblem(request.url, this.config.webhookAllowPrivateNetworks);
    if (problem) {
      return {
        ok: false,
        statusCode: null,
        error: problem.message,
        unreachable: false,
        responseBody: null,
        retryAfter: undefined,
        durationMs: elapsed(),
        ...(problem.refusal ? { refused: problem.refusal.publicDetail } : {}),
      };
    }
    // One controller for the exchange, aborted by the caller's signal or at the deadline: a
    // third of the cost of AbortSignal.timeout with AbortSignal.any, whose weak references the
    // garbage collector has to sweep after every request.
    const exchange = new AbortController();
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      exchange.abort(new Error(`timeout after ${this.config.deliveryTimeoutMs} ms`));
    }, this.config.deliveryTimeoutMs);
    const cancel = () => exchange.abort(signal.reason);
    if (signal.aborted) cancel();
    else signal.addEventListener('abort', cancel, { once: true });
    try {
      request.headers['user-agent'] ??= USER_AGENT;
      const response = await this.adapter({
        ...this.requestDefaults,
        method: 'post',
        url: request.url,
        data: request.body,
        // In place of the defaults' per-method header sets, which only axios.request() reads.
        headers: new AxiosHeaders(request.headers),
        signal: exchange.signal,
      });
      const responseBody = await readCapped(response.data, exchange.signal);
      const status = response.status;
      const retryAfter = headerValue(response.headers['retry-after']);
      const ok = status >= 200 && status < 300;
      return {
        ok,
        statusCode: status,
        error: ok ? null : statusError(status, headerValue(response.headers['location'])),
        unreachable: false,
        responseBody,
        retryAfter,
        durationMs: elapsed(),
      };
    } catch (error) {
      const refusal = signal.aborted ? undefined : addressRefusal(error);
      return {
        ok: false,
        statusCode: null,
        error: describeError(error, signal, timedOut, this.config.deliveryTimeoutMs),
        unreachable: !signal.aborted && !refusedByGuard(error),
        responseBody: null,
        retryAfter: undefined,
        durationMs: elapsed(),
        ...(refusal || refusedByGuard(error)
          ? { refused: refusal?.publicDetail ?? 'the address policy refused the connection' }
          : {}),
      };
    } finally {
      clearTimeout(deadline);
      signal.removeEventListener('abort', cancel);
    }
  }

  onApplicationShutdown() {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/**
 * Sets up every socket the agent opens. A connect timer: the socket is destroyed with
 * ERR_WEBHOOK_CONNECT_TIMEOUT unless connected (TLS included) within `ms` of the DNS answer (at
 * once for an IP literal). And TCP keep-alive, switched on once with the agent's delay: axios
 * (60 s, as each request takes the socket) and the agent (its own 1 s, as the socket goes back
 * to the pool) would otherwise switch it again on every request, four setsockopt calls each.
 * The socket keeps the pool's 1 s throughout; while a request waits for its answer, probes a
 * live receiver acknowledges change nothing, and the delivery deadline comes first.
 */
function withSocketSetup<A extends http.Agent>(agent: A, ms: number): A {
  const create = (agent as unknown as { createConnection: CreateConnection }).createConnection;
  const secure = agent instanceof https.Agent;
  (agent as unknown as { createConnection: CreateConnection }).createConnection = function (
    this: A,
    options,
    callback,
  ) {
    const socket = create.call(this, options, callback);
    if (!socket) return socket;
    socket.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
    socket.setKeepAlive = keepAliveAlreadyOn;
    const connectError = () => {
      const error: NodeJS.ErrnoException = new Error(`connect timeout after ${ms} ms`);
      error.code = 'ERR_WEBHOOK_CONNECT_TIMEOUT';
      return error;
    };
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer ??= setTimeout(() => socket.destroy(connectError()), ms);
    };
    const disarm = () => clearTimeout(timer);
    if (isIP(String(options.host ?? ''))) arm();
    else socket.once('lookup', arm);
    socket.once(secure ? 'secureConnect' : 'connect', disarm);
    socket.once('close', disarm);
    return socket;
  };
  return agent;
}

/** A socket's setKeepAlive once keep-alive is on: switching it off still goes through. */
function keepAliveAlreadyOn(this: net.Socket, enable?: boolean, initialDelay?: number): net.Socket {
  if (enable) return this;
  return net.Socket.prototype.setKeepAlive.call(this, enable, initialDelay);
}

type CreateConnection = (
  options: net.NetConnectOpts & { host?: string },
  callback?: (error: Error | null, socket: net.Socket) => void,
) => net.Socket | undefined;

/** The SSRF guard refused the address the host resolved to: not the host's failure. */
function refusedByGuard(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } };
  return [e?.code, e?.cause?.code].includes('ERR_WEBHOOK_ADDRESS_REFUSED'); // WebhookAddressRefusedError
}

function headerValue(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length ? String(value[0]) : undefined;
  return value === undefined || value === null ? undefined : String(value);
}

function statusError(status: number, location: string | undefined): string {
  if (status >= 300 && status < 400) {
    return `HTTP ${status}: redirect not followed${location ? ` (location: ${location.slice(0, 200)})` : ''}`;
  }
  return `HTTP ${status}`;
}

/**
 * The first bytes of the response body (UTF-8, possibly cut mid-character), then the stream is
 * dropped. A body that breaks off or outlasts the deadline still yields what arrived. Read with
 * events rather than an async iterator: most answers are empty or a few bytes, and the iterator's
 * promises were a good part of a delivery's garbage.
 */
function readCapped(stream: Readable, signal: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      signal.removeEventListener('abort', done);
      stream.off('data', onData);
      stream.off('end', done);
      stream.off('error', done);
      stream.off('close', done);
      stream.destroy();
      if (size === 0) resolve(null);
      else {
        const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        resolve(body.subarray(0, RESPONSE_BODY_CAP_BYTES).toString('utf8'));
      }
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      chunks.push(buffer);
      size += buffer.length;
      if (size >= RESPONSE_BODY_CAP_BYTES) done();
    };
    if (signal.aborted || stream.destroyed || stream.readableEnded) return done();
    signal.addEventListener('abort', done, { once: true });
    stream.on('data', onData);
    // Whichever comes first; `done` runs once (a second call finds nothing left to do).
    stream.once('end', done);
    stream.once('error', done);
    stream.once('close', done);
  });
}

/** A one-line reason a user can act on, stored as last_error. */
function describeError(
  error: unknown,
  signal: AbortSignal,
  timedOut: boolean,
  timeoutMs: number,
): string {
  if (signal.aborted)
    return `aborted: ${String(signal.reason instanceof Error ? signal.reason.message : signal.reason)}`;
  if (timedOut) return `timeout after ${timeoutMs} ms`;
  if (isAxiosError(error)) {
    const code = error.code ?? (error.cause as NodeJS.ErrnoException | undefined)?.code;
    switch (code) {
      case 'ECONNABORTED':
      case 'ETIMEDOUT':
        return `timeout after ${timeoutMs} ms`;
      case 'ECONNREFUSED':
        return `connection refused (${error.message})`;
      case 'ECONNRESET':
        return `connection reset by peer`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `DNS lookup failed: ${error.message}`;
      case 'ERR_WEBHOOK_CONNECT_TIMEOUT':
        return error.message;
      default:
        return `${code ? code + ': ' : ''}${error.message}`.slice(0, 500);
    }
  }
  return String(error instanceof Error ? error.message : error).slice(0, 500);
}
