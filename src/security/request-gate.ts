import type { NextFunction, Request, Response } from 'express';
import { isIP } from 'node:net';
import { hasBody, refuseEarly } from '../common/early-refusal.js';
import { ApiKeys, WWW_AUTHENTICATE } from './api-keys.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** application/json and the +json types (application/merge-patch+json, …). */
export function isJsonContentType(header: string | undefined): boolean {
  const type = header?.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type ?? '');
}

/**
 * Whether an open API (no API keys) answers to this Host. A web page can reach an API on
 * localhost or a private network through DNS rebinding: its own name, re-pointed at our address,
 * makes its requests same-origin. Such a name has a dot (a registrable domain); IP addresses,
 * localhost and single-label names (a container's service name) cannot be such a page's origin.
 */
export function isOpenApiHost(header: string | undefined): boolean {
  if (header === undefined) return true; // HTTP/1.0 without Host: not a browser
  const host = header
    .toLowerCase()
    .replace(/:\d*$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
  return (
    isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost') || !host.includes('.')
  );
}

/**
 * What every request passes before its body is read (registered before the body parser):
 * - with no API keys, the Host must be one an open API answers to (isOpenApiHost);
 * - with API keys, a request that carries a body must present a valid key first, so an
 *   unauthenticated client cannot make us read and parse a megabyte (body-less requests are
 *   checked by the guard, which knows the public routes: none of them takes a body);
 * - a state-changing request that declares a content type must declare JSON, and a body must be
 *   JSON: an HTML form can only send form-encoded, multipart or text/plain bodies, so no form on
 *   another site can reach a route here, with or without a body.
 */
export function requestGate(keys: ApiKeys) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (keys.count === 0 && !isOpenApiHost(req.headers.host)) {
      return refuseEarly(
        req,
        res,
        403,
        `Host "${String(req.headers.host).slice(0, 100)}" is refused: an API without API_KEYS ` +
          'answers only to IP addresses, localhost and single-label host names; set API_KEYS',
      );
    }
    if (hasBody(req)) {
      const problem = keys.problem(req.headers.authorization);
      if (problem !== undefined) {
        return refuseEarly(req, res, 401, problem, { 'WWW-Authenticate': WWW_AUTHENTICATE });
      }
    }
    const contentType = req.headers['content-type'];
    if (
      !SAFE_METHODS.has(req.method) &&
      (contentType !== undefined || hasBody(req)) &&
      !isJsonContentType(contentType)
    ) {
      return refuseEarly(
        req,
        res,
        415,
        `request body must be JSON: send Content-Type: application/json` +
          (contentType ? ` (got "${contentType.slice(0, 100)}")` : ''),
      );
    }
    const charset = charsetOf(contentType);
    if (charset !== undefined && !UTF8.has(charset)) {
      return refuseEarly(
        req,
        res,
        415,
        `request bodies are UTF-8 JSON: send charset=utf-8 or no charset (got "${charset.slice(0, 40)}")`,
      );
    }
    next();
  };
}

const UTF8 = new Set(['utf-8', 'utf8']);

/**
 * The charset parameter of a Content-Type, lower-cased, unquoted. Any other than UTF-8 is refused:
 * the body reader would decode it (utf-7 turns "+ADw-" into "<"), so what is stored would not be
 * the text the client's bytes show.
 */
function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*("[^"]*"|[^;\s]*)/i.exec(contentType ?? '');
  return match?.[1].replace(/^"|"$/g, '').toLowerCase();
}
