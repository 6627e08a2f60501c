import {
  CanActivate,
  ExecutionContext,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { ApiKeys, WWW_AUTHENTICATE } from './api-keys.js';
import { PUBLIC_ROUTE } from './public.decorator.js';

/**
 * With API_KEYS set, every route but the @Public() ones (and /docs, which Swagger serves outside
 * Nest's router) needs `Authorization: Bearer <key>`; otherwise 401. A request with a body has
 * already been checked by the request gate, before the body was read.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate, OnApplicationBootstrap {
  private readonly logger = new Logger('Security');

  constructor(
    private readonly keys: ApiKeys,
    private readonly reflector: Reflector,
  ) {}

  onApplicationBootstrap() {
    if (this.keys.count === 0) {
      this.logger.warn(
        'API_KEYS is not set: the API is open to anyone who can reach it. ' +
          'Set API_KEYS to require Authorization: Bearer <key> (see SECURITY.md).',
      );
    } else {
      this.logger.log(`API keys required (${this.keys.count} configured)`);
    }
  }

  canActivate(context: ExecutionContext): boolean {
    const isPublic = this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const http = context.switchToHttp();
    const problem = this.keys.problem(http.getRequest<Request>().headers.authorization);
    if (problem === undefined) return true;
    http.getResponse<Response>().setHeader('WWW-Authenticate', WWW_AUTHENTICATE);
    throw new UnauthorizedException(problem);
  }
}
