import { Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { Histogram, Registry } from 'prom-client';

/** The label of a request no route answered: a 404, or refused before routing (413, bad JSON). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * HTTP requests of the API by method, route and status: a histogram of their durations, whose
 * `_count` is the number of requests. The route is Express's pattern (`/webhooks/:id`), never the
 * raw path, so ids do not make a series each.
 */
@Injectable()
export class HttpMetrics {
  private readonly duration: Histogram<'method' | 'route' | 'status'>;

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'pgwq_http_request_duration_seconds',
      help: 'API requests by method, route pattern and status, and how long they took to answer.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }

  /** Express middleware; register it before any other so that early refusals count too. */
  readonly middleware = (req: Request, res: Response, next: NextFunction): void => {
    const observe = this.duration.startTimer();
    // 'close' also fires when the client goes away before the answer ('finish' would not).
    res.once('close', () => {
      const route = req.route ? `${req.baseUrl}${(req.route as { path: string }).path}` : undefined;
      observe({ method: req.method, route: route ?? UNMATCHED_ROUTE, status: res.statusCode });
    });
    next();
  };
}
