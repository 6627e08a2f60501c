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
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app-config.js';
import { PUBLIC_ROUTE } from './public.decorator.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** `Authorization: Bearer <key>`; the scheme name is case-insensitive (RFC 7235). */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * With API_KEYS set, every route but the @Public() ones (and /docs, which Swagger serves outside
 * Nest's router) needs `Authorization: Bearer <key>`; otherwise 401. Keys are compared as SHA-256
 * digests with timingSafeEqual (equal lengths by construction), against every key without an early
 * exit, so the time taken tells nothing about how much of a key was right, or which one.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate, OnApplicationBootstrap {
  private readonly logger = new Logger('Security');
  private readonly keyDigests: Buffer[];

  constructor(
    config: AppConfig,
    private readonly reflector: Reflector,
  ) {
    this.keyDigests = config.apiKeys.map(digest);
  }

  onApplicationBootstrap() {
    if (this.keyDigests.length === 0) {
      this.logger.warn(
        'API_KEYS is not set: the API is open to anyone who can reach it. ' +
          'Set API_KEYS to require Authorization: Bearer <key> (see SECURITY.md).',
      );
    } else {
      this.logger.log(`API keys required (${this.keyDigests.length} configured)`);
    }
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.keyDigests.length === 0) return true;
    const isPublic = this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const http = context.switchToHttp();
    const header = http.getRequest<Request>().headers.authorization;
    const presented = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    if (presented !== undefined && this.isKnown(presented)) return true;
    http.getResponse<Response>().setHeader('WWW-Authenticate', 'Bearer realm="pg-webhook-queue"');
    throw new UnauthorizedException(
      presented === undefined
        ? 'missing API key: send Authorization: Bearer <key>'
        : 'invalid API key',
    );
  }

  private isKnown(presented: string): boolean {
    const candidate = digest(presented);
    let match = false;
    for (const key of this.keyDigests) match = timingSafeEqual(candidate, key) || match;
    return match;
  }
}
