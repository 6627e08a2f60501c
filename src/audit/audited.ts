import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { concatMap, Observable } from 'rxjs';
import { ActionRecorder, withActionRecorder } from '../database/action-record.js';
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
 * handler to have run. Text that is not JSON (a body sent where none is taken) counts as none.
 */
export function bodyOf(req: Request): Record<string, unknown> {
  const text: unknown = req.body;
  if (typeof text !== 'string' || text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return {};
  }
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};
}

/** `webhook:<id>`: the target of every action on one webhook, its lines included. */
export const webhookTarget = (req: Request): string => `webhook:${String(req.params.id)}`;

/**
 * Marks an operator action: once it succeeded, AuditInterceptor records who did it (the name of
 * the API key presented), `action`, and what `describe` says about the request and its outcome
 * (the answer's fields). A failed action (4xx, 5xx) changed nothing and is not recorded.
 */
export const Audited = (
  action: string,
  // A route without a body (delete, rotate) records none of what it may have been sent.
  describe: AuditedRoute['describe'] = (req) => ({ target: webhookTarget(req), parameters: {} }),
) => SetMetadata(AUDITED, { action, describe } satisfies AuditedRoute);

/**
 * Records the @Audited routes' actions in the actions' own transactions: the action's code calls
 * recordAction (src/database/action-record.ts) where it commits, and the row is written there,
 * so the action and its record commit together or not at all; a record that cannot be written
 * fails the action, and the answer is an error. An action with no transaction to share (one
 * that changed nothing, such as a redrive that found no dead delivery) is recorded after it.
 * Either way the entry is readable at GET /audit-log as soon as the answer goes out, and is
 * logged as a line.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
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
    const entry = (outcome: unknown) => ({
      actor,
      action: route.action,
      ...route.describe(req, outcome),
    });
    let id: number | undefined;
    const recorder: ActionRecorder = async (db, outcome) => {
      id = await this.log.write(entry(outcome), db, id);
    };
    // Nest runs the handler in the async context that handle() is called in: this recorder's.
    return withActionRecorder(recorder, () => next.handle()).pipe(
      concatMap(async (result: unknown) => {
        if (id === undefined) await this.log.write(entry(result));
        this.log.logLine(entry(result));
        return result;
      }),
    );
  }
}
