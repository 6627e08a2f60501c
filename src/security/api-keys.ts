import { Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app-config.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** `Authorization: Bearer <key>`; the scheme name is case-insensitive (RFC 7235). */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * The configured API keys and the one check of an Authorization header against them, used by the
 * guard (every route but the public ones) and by the request gate (before a body is read). Keys
 * are compared as SHA-256 digests with timingSafeEqual (equal lengths by construction), against
 * every key without an early exit, so the time taken tells nothing about how much of a key was
 * right, or which one.
 */
@Injectable()
export class ApiKeys {
  private readonly digests: Buffer[];
  private readonly names: string[];

  constructor(config: AppConfig) {
    this.digests = config.apiKeys.map(({ key }) => digest(key));
    this.names = config.apiKeys.map(({ name }) => name);
  }

  get count(): number {
    return this.digests.length;
  }

  /** Why the header does not authenticate, or undefined when it does (or no key is set). */
  problem(header: string | string[] | undefined): string | undefined {
    if (this.digests.length === 0) return undefined;
    const presented = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    if (presented === undefined) return 'missing API key: send Authorization: Bearer <key>';
    return this.matching(presented) === undefined ? 'invalid API key' : undefined;
  }

  /**
   * Who sent a request that passed the guard: the name of the key it presented, or `local`
   * when no key is configured (whoever can reach the API).
   */
  actor(header: string | string[] | undefined): string {
    if (this.digests.length === 0) return 'local';
    const presented = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    const index = presented === undefined ? undefined : this.matching(presented);
    return index === undefined ? 'unknown' : this.names[index];
  }

  /** The index of the key presented, checking every key without an early exit. */
  private matching(presented: string): number | undefined {
    const candidate = digest(presented);
    let found: number | undefined;
    this.digests.forEach((key, index) => {
      if (timingSafeEqual(candidate, key)) found = index;
    });
    return found;
  }
}

export const WWW_AUTHENTICATE = 'Bearer realm="pg-webhook-queue"';
