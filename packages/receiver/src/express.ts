import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyDelivery, ApplyOptions } from './receive.js';
import { Delivery, verify, VerifyOptions, WebhookVerificationError } from './verify.js';

/** An Express request (structurally: the kit does not depend on Express). */
export type WebhookIncoming = IncomingMessage & { body?: unknown; webhook?: Delivery };
type Next = (error?: unknown) => void;

/** The raw body: express.raw() left it in req.body, or the stream is still unread. */
async function rawBody(req: WebhookIncoming): Promise<Buffer> {
  if (Buffer.isBuffer(req.body)) return req.body;
  if (typeof req.body === 'string') return Buffer.from(req.body);
  if (req.body !== undefined) {
    throw new Error('the webhook route needs the raw body: mount it before express.json()');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Express middleware: verifies both signatures and puts the delivery in `req.webhook`, or answers
 * 401 with the reason. Mount it on the webhook route before any JSON body parser (the signature
 * is over the body's exact bytes).
 */
export function verifyWebhook(secret: string | readonly string[], options: VerifyOptions = {}) {
  return (req: WebhookIncoming, res: ServerResponse, next: Next) => {
    rawBody(req).then((body) => {
      try {
        req.webhook = verify({ headers: req.headers, body }, secret, options);
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) return next(error);
        res.writeHead(401, { 'content-type': 'text/plain' }).end(`${error.message}\n`);
        return;
      }
      next();
    }, next);
  };
}

/**
 * Express handler after verifyWebhook: applies `req.webhook` exactly once, in order, with your
 * `apply` in the inbox's transaction, and answers 204 (applied), 200 (duplicate) or 409 (gap).
 */
export function applyWebhook(options: ApplyOptions) {
  return (req: WebhookIncoming, res: ServerResponse, next: Next) => {
    if (!req.webhook) return next(new Error('applyWebhook needs verifyWebhook before it'));
    applyDelivery(req.webhook, options).then((answer) => {
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(`${answer.message}\n`);
    }, next);
  };
}
