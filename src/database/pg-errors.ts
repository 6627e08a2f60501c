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
