import {
  BadRequestException,
  createParamDecorator,
  ExecutionContext,
  PayloadTooLargeException,
} from '@nestjs/common';
import type { Request } from 'express';
import { JsonScanError, JsonScanLimitError, ScannedValue, scanJson } from './json-scan.js';

/**
 * Request bodies arrive as text (one body reader for all JSON, registered in configureApp) and
 * are turned into values here, per route: the publish routes scan theirs and keep the payload as
 * the text that was sent (RawJsonBody); every other route's body is small and goes through
 * JSON.parse and the validation pipe (parseDtoBody).
 */

/** The deepest nesting a request body may have (a payload sits one level down). */
export const MAX_JSON_DEPTH = 64;

/**
 * The largest body of a route other than publishing. class-transformer's handling of an object's
 * keys is quadratic (118,000 keys held the event loop for 10 s), so no body it sees may be big.
 */
export const DTO_BODY_MAX_BYTES = 64 * 1024;

/**
 * Checks a body's syntax and nesting; see scanJson for `keepDepth` and `maxKeptItems` (a
 * JsonScanLimitError is left to the caller, which knows what the limit means). A bad body is a 400.
 */
export function scanRequestBody(
  body: string,
  keepDepth: number,
  maxKeptItems?: number,
): ScannedValue {
  try {
    return scanJson(body, { maxDepth: MAX_JSON_DEPTH, keepDepth, maxKeptItems });
  } catch (error) {
    if (error instanceof JsonScanError && !(error instanceof JsonScanLimitError)) {
      throw new BadRequestException(`request body is not valid JSON: ${error.message}`);
    }
    throw error;
  }
}

/** A body for a validated DTO: small, well-formed, nested at most MAX_JSON_DEPTH levels. */
export function parseDtoBody(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  const size = Buffer.byteLength(body);
  if (size > DTO_BODY_MAX_BYTES) {
    throw new PayloadTooLargeException(
      `request body is ${size} bytes; this route takes at most ${DTO_BODY_MAX_BYTES}`,
    );
  }
  scanRequestBody(body, 0);
  return JSON.parse(body);
}

/** The request body as the JSON text that was sent, for routes that read it themselves. */
export const RawJsonBody = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const body = ctx.switchToHttp().getRequest<Request>().body as unknown;
  if (typeof body !== 'string') {
    throw new BadRequestException('request body is required (Content-Type: application/json)');
  }
  return body;
});
