import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Request, Response } from 'express';
import { map, Observable } from 'rxjs';

/** The most a list response carries, whatever `limit` says (rows are also bounded by `limit`). */
export const LIST_RESPONSE_MAX_BYTES = 1024 * 1024;

/** One page of a list: sent by PageInterceptor as a JSON array bounded by rows and bytes. */
export class Page<T extends { id: number }> {
  constructor(
    readonly items: readonly T[],
    readonly limit: number,
  ) {}
}

/**
 * Sends a Page as a JSON array of at most `limit` rows and LIST_RESPONSE_MAX_BYTES (always at
 * least one row), serialised once, row by row, so no response grows with what its rows hold.
 * When more rows may follow (the page is full, or was cut for size), `Link: <…?after=id>;
 * rel="next"` says where the next page starts: follow it until it is absent.
 */
@Injectable()
export class PageInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      map((result: unknown) => {
        if (!(result instanceof Page)) return result;
        const http = context.switchToHttp();
        return render(result, http.getRequest<Request>(), http.getResponse<Response>());
      }),
    );
  }
}

function render(page: Page<{ id: number }>, req: Request, res: Response): string {
  const rows: string[] = [];
  let bytes = 2;
  for (const item of page.items) {
    const json = JSON.stringify(item);
    const size = Buffer.byteLength(json) + 1;
    if (rows.length > 0 && bytes + size > LIST_RESPONSE_MAX_BYTES) break;
    rows.push(json);
    bytes += size;
  }
  if (rows.length > 0 && (rows.length < page.items.length || rows.length >= page.limit)) {
    const next = new URL(req.originalUrl, 'http://api');
    next.searchParams.set('after', String(page.items[rows.length - 1].id));
    res.setHeader('Link', `<${next.pathname}${next.search}>; rel="next"`);
  }
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  return `[${rows.join(',')}]`;
}
