import {
  CallHandler,
  ExecutionContext,
  Injectable,
  Logger,
  NestInterceptor,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { concatMap, Observable } from 'rxjs';
import { ApiKeys } from '../security/api-keys.js';
import { AuditLog } from './audit-log.service.js';

/** What an audited route did: on what, with what (never a secret). */
export interface AuditDescription {
  target: string;
  parameters: Record<string, unknown>;
}

interface AuditedRoute {
  action: string;
  describe: (req: Request, result: unknown) => AuditDescription;
}

const AUDITED = Symbol('audited');

/**
 * The request's JSON body: bodies arrive as JSON text (configureApp), and a route that takes one
 * has had it checked by the validation pipe (small, well formed, no unknown field) for the
 * handler to have run. A route without a body may still have been sent an empty one.
 */
export function bodyOf(req: Request): Record<string, unknown> {
  const text: unknown = req.body;
  if (typeof text !== 'string' || text.trim() === '') return {};
  const body: unknown = JSON.parse(text);
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};
}

/** `webhook:<id>`: the target of every action on one webhook, its lines included. */
export const webhookTarget = (req: Request): string => `webhook:${String(req.params.id)}`;

/**
 * Marks an operator action: once it succeeded, AuditInterceptor records who did it (the name of
 * the API key presented), `action`, and what `describe` says about the request and its result.
 * A failed action (4xx, 5xx) changed nothing and is not recorded.
 */
export const Audited = (
  action: string,
  describe: AuditedRoute['describe'] = (req) => ({
    target: webhookTarget(req),
    parameters: bodyOf(req),
  }),
) => SetMetadata(AUDITED, { action, describe } satisfies AuditedRoute);

/**
 * Records the @Audited routes' actions before their answer goes out, so an entry is readable at
 * GET /audit-log as soon as the action returned. The entry is written after the action committed
 * (the actions' own transactions stay theirs): should writing it fail, the answer still reports
 * the action, and the failure is logged as an error naming the actor, action and path.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Audit');

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeys,
    private readonly log: AuditLog,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const route = this.reflector.get<AuditedRoute | undefined>(AUDITED, context.getHandler());
    if (!route) return next.handle();
    const req = context.switchToHttp().getRequest<Request>();
    const actor = this.keys.actor(req.headers.authorization);
    return next.handle().pipe(
      concatMap(async (result: unknown) => {
        const done = { actor, action: route.action, path: req.path };
        try {
          await this.log.record({ actor, action: route.action, ...route.describe(req, result) });
        } catch (error) {
          this.logger.error(
            `could not record ${JSON.stringify(done)}: ${(error as Error).message}`,
          );
        }
        return result;
      }),
    );
  }
}
