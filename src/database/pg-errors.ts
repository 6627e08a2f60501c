import {
  BadRequestException,
  ConflictException,
  HttpException,
  NotFoundException,
} from '@nestjs/common';
import { DATABASE_TIMEOUTS } from './pool-options.js';

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

/** lock_timeout ran out (55P03 lock_not_available) or statement_timeout (57014 query_canceled). */
const LOCK_NOT_AVAILABLE = '55P03';
/** 40P01: PostgreSQL ended this transaction to break a deadlock with another one. */
const DEADLOCK_DETECTED = '40P01';
const QUERY_CANCELED = '57014';
/** Class 08: connection exceptions; 57P01-57P03: the server is shutting down or starting. */
const CONNECTION_EXCEPTION_CLASS = '08';
const SERVER_GOING_AWAY = ['57P01', '57P02', '57P03'];
const NETWORK_ERRORS = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'];

/**
 * Why the database could not serve a request in time, for a 503 the client may retry, or
 * undefined when the error is something else. pg-pool and the pg client signal their own
 * timeouts by message only, so they are matched here, at the one boundary that knows pg.
 */
export function databaseUnavailableReason(error: unknown): string | undefined {
  const code = pgErrorCode(error);
  const message = String((error as { message?: unknown })?.message ?? '');
  const s = (ms: number) => `${ms / 1000} s`;
  if (code === LOCK_NOT_AVAILABLE) {
    return `another transaction held a lock this request needs for over ${s(DATABASE_TIMEOUTS.lockMs)}; try again`;
  }
  if (code === DEADLOCK_DETECTED) {
    return 'this request deadlocked with another transaction (e.g. one publishing to the same partitions in another order) and was rolled back; try again';
  }
  if (code === QUERY_CANCELED) {
    return `the database did not finish this request within ${s(DATABASE_TIMEOUTS.statementMs)}; try again`;
  }
  if (/timeout exceeded when trying to connect|connection timeout/i.test(message)) {
    return `no database connection was free within ${s(DATABASE_TIMEOUTS.connectMs)}; try again`;
  }
  if (/Query read timeout/.test(message)) {
    return `the database did not answer within ${s(DATABASE_TIMEOUTS.queryMs)}; try again`;
  }
  if (
    code?.startsWith(CONNECTION_EXCEPTION_CLASS) ||
    SERVER_GOING_AWAY.includes(code ?? '') ||
    NETWORK_ERRORS.includes(code ?? '') ||
    /Connection terminated/i.test(message)
  ) {
    return 'the database is unreachable; try again';
  }
  return undefined;
}
