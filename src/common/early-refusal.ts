import type { NextFunction, Request, Response } from 'express';
import { errorBody } from './http-exception.filter.js';

/** How long a refused client gets to read its answer before the connection is cut. */
const LINGER_MS = 1000;

/** Whether the request announces a body (Content-Length above 0, or chunked). */
export function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Answers at once, in the API's error shape, without reading the request body. A body that was
 * announced is not drained (Node would otherwise read it all to keep the connection alive): the
 * answer goes out with `Connection: close` and the socket is closed shortly after, whatever the
 * client still sends.
 */
export function refuseEarly(
  req: Request,
  res: Response,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const unread = hasBody(req) && !req.complete;
  if (unread) req.pause();
  if (!res.headersSent) {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    if (unread) res.setHeader('Connection', 'close');
    res.status(status).json(errorBody(status, message));
  }
  if (unread) res.once('finish', () => setTimeout(() => req.socket.destroy(), LINGER_MS).unref());
}

/**
 * Refuses a request body over its route's limit (`limitOf`) at once: from Content-Length before a
 * byte is read, or as soon as a streamed (chunked) body passes the limit. body-parser alone
 * answers only after it has drained the whole body, so a client could make us read gigabytes
 * before it hears 413.
 */
export function bodyLimit(limitOf: (req: Request) => number) {
  return (req: Request, res: Response, next: NextFunction) => {
    const limit = limitOf(req);
    const message = `request body is too large (the limit is ${limit} bytes)`;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return refuseEarly(req, res, 413, message);
    let seen = 0;
    const count = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limit) {
        req.off('data', count);
        refuseEarly(req, res, 413, message);
      }
    };
    // Counts the raw bytes beside body-parser (which attaches its own listener in this tick).
    if (hasBody(req)) req.on('data', count);
    next();
  };
}
