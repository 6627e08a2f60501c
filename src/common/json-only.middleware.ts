import type { NextFunction, Request, Response } from 'express';
import type { ErrorBody } from './http-exception.filter.js';

/**
 * Refuses a request body that is not JSON with 415. The JSON parser skips other types, so a
 * form post would reach the validators as `{}` and come back as a list of missing fields; this
 * says what to send instead. Requests without a body (DELETE, rotate) pass.
 */
export function jsonOnly(req: Request, res: Response, next: NextFunction) {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
  if (!hasBody || req.is('json')) return next();
  const got = req.headers['content-type'] ?? 'no content-type';
  const body: ErrorBody = {
    status_code: 415,
    error: 'Unsupported Media Type',
    message: `send JSON with content-type: application/json (got ${got})`,
  };
  res.status(415).json(body);
}
