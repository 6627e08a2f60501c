import type { NextFunction, Request, Response } from 'express';
import type { ErrorBody } from './http-exception.filter.js';

/** How long a refused client gets to read its 413 before the connection is cut. */
const LINGER_MS = 1000;

/**
 * Refuses a request body over `limit` bytes at once: from Content-Length before a byte is read,
 * or as soon as a streamed (chunked) body passes the limit. body-parser alone answers only after
 * it has drained the whole body (to keep the connection alive), so a client could make us read
 * gigabytes before it hears 413; here the answer goes out first, with `Connection: close`, and
 * the socket is closed shortly after, whatever the client still sends.
 */
export function bodyLimit(limit: number) {
  return (req: Request, res: Response, next: NextFunction) => {
    let refused = false;
    const refuse = () => {
      if (refused) return;
      refused = true;
      req.pause();
      if (!res.headersSent) {
        const body: ErrorBody = {
          status_code: 413,
          error: 'Payload Too Large',
          message: `request body is too large (the limit is ${limit} bytes)`,
        };
        res.status(413).setHeader('Connection', 'close');
        res.json(body);
      }
      res.once('finish', () => setTimeout(() => req.socket.destroy(), LINGER_MS).unref());
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return refuse();
    let seen = 0;
    const count = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limit) {
        req.off('data', count);
        refuse();
      }
    };
    // Counts the raw bytes beside body-parser (which attaches its own listener in this tick).
    if (req.headers['transfer-encoding'] !== undefined || req.headers['content-length']) {
      req.on('data', count);
    }
    next();
  };
}
