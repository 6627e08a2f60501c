import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import type { Response } from 'express';
import { databaseUnavailableReason } from '../database/pg-errors.js';

export interface ErrorBody {
  status_code: number;
  error: string;
  message: string;
}

export function errorBody(status: number, message: string): ErrorBody {
  return { status_code: status, error: httpStatusName(status), message };
}

/** Errors raised by the body parser before any controller runs carry their own 4xx status. */
function bodyParserStatus(exception: unknown): number | undefined {
  const e = exception as { status?: unknown; type?: unknown; expose?: unknown };
  return typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true
    ? e.status
    : undefined;
}

function httpMessage(exception: HttpException): string {
  const response = exception.getResponse();
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
}

/** Every error leaves the API as {status_code, error, message} (DESIGN §5). */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger(HttpExceptionFilter.name);

  catch(exception: unknown, host: ArgumentsHost) {
    const res = host.switchToHttp().getResponse<Response>();
    let status: number;
    let message: string;
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      message = httpMessage(exception);
    } else if (bodyParserStatus(exception) !== undefined) {
      status = bodyParserStatus(exception)!;
      const type = (exception as { type?: string }).type;
      message =
        type === 'entity.parse.failed'
          ? 'request body is not valid JSON'
          : type === 'entity.too.large'
            ? 'request body is too large'
            : (exception as Error).message;
    } else if (databaseUnavailableReason(exception) !== undefined) {
      // Timeouts bound every database wait (DATABASE_TIMEOUTS): a request that hits one is
      // refused with a 503 rather than left hanging on a busy or unreachable database.
      status = HttpStatus.SERVICE_UNAVAILABLE;
      message = databaseUnavailableReason(exception)!;
      this.logger.warn(`database unavailable: ${(exception as Error).message}`);
    } else {
      status = HttpStatus.INTERNAL_SERVER_ERROR;
      message = 'internal server error';
      this.logger.error((exception as Error)?.stack ?? String(exception));
    }
    if (!res.headersSent) res.status(status).json(errorBody(status, message));
  }
}

function httpStatusName(status: number): string {
  const name = HttpStatus[status];
  if (!name) return status >= 500 ? 'Internal Server Error' : 'Error';
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join(' ');
}
