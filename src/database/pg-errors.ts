import {
  BadRequestException,
  ConflictException,
  HttpException,
  NotFoundException,
} from '@nestjs/common';

/** The PostgreSQL error codes the API turns into HTTP statuses, in one place. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
/** Class 22: data exceptions, e.g. 22P05, a \u0000 inside JSON that jsonb cannot store. */
const DATA_EXCEPTION_CLASS = '22';

export function pgErrorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; driverError?: { code?: unknown } };
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps a constraint violation to the HTTP error it means for this request, or rethrows.
 * The messages say what clashed, was missing or was invalid.
 */
export function translatePgError(
  error: unknown,
  messages: { conflict?: string; missing?: string; invalid?: string },
): never {
  const code = pgErrorCode(error);
  let mapped: HttpException | undefined;
  if (code === UNIQUE_VIOLATION && messages.conflict)
    mapped = new ConflictException(messages.conflict);
  if (code === FOREIGN_KEY_VIOLATION && messages.missing)
    mapped = new NotFoundException(messages.missing);
  if (code?.startsWith(DATA_EXCEPTION_CLASS) && messages.invalid) {
    mapped = new BadRequestException(messages.invalid);
  }
  throw mapped ?? error;
}

/** 42P01: the table does not exist (a database the migrations have not run on). */
export const UNDEFINED_TABLE = '42P01';

/** Node's codes for a server that is not (yet) there: worth waiting for. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
]);
/** 57P03 cannot_connect_now (starting up, shutting down), 53300 too_many_connections. */
const NOT_NOW = new Set(['57P03', '53300']);

/**
 * Whether a failed connection may succeed if tried again: the server is starting, restarting or
 * out of connections. A database that does not exist or a wrong password will not get better.
 */
export function isTransientConnectionError(error: unknown): boolean {
  const code = pgErrorCode(error);
  if (code !== undefined) return UNREACHABLE.has(code) || NOT_NOW.has(code);
  // pg's own words for a socket closed or timed out before the server answered.
  return /Connection terminated|timeout expired/i.test((error as Error)?.message ?? '');
}
