import { validateHeaderName, validateHeaderValue } from 'node:http';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsNumber, IsObject, IsOptional, Max, Min } from 'class-validator';
import { ON_EXHAUSTED } from '../database/entities/webhook.entity.js';
import type { OnExhausted } from '../database/entities/webhook.entity.js';

/**
 * Every endpoint its own manners (DESIGN §10): the per-webhook settings that POST /webhooks and
 * PATCH /webhooks/{id} take alike. Absent = unchanged (PATCH) or unset (POST); null = the global
 * setting (or, for headers, none).
 */

export const MAX_HEADERS = 20;
export const MAX_HEADER_NAME_LENGTH = 100;
export const MAX_HEADER_VALUE_LENGTH = 4096;

/**
 * Names the queue sets itself, or that frame the request (hop-by-hop, length, encoding): a static
 * header must not replace, duplicate or contradict them. webhook-* are the queue's own.
 */
const REFUSED_HEADER_NAMES = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'user-agent',
]);

/**
 * Why the headers are refused, or undefined. Messages name the header, never its value: the
 * values are write-only (they may be credentials) and an error message is logged.
 */
export function headersProblem(headers: unknown): string | undefined {
  if (headers === null) return undefined;
  if (typeof headers !== 'object' || Array.isArray(headers)) {
    return 'headers must be an object of header names and string values';
  }
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) return `headers: at most ${MAX_HEADERS} headers`;
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    const shown = JSON.stringify(name.slice(0, MAX_HEADER_NAME_LENGTH));
    if (name.length === 0 || name.length > MAX_HEADER_NAME_LENGTH) {
      return `headers: a header name must be 1 to ${MAX_HEADER_NAME_LENGTH} characters`;
    }
    try {
      validateHeaderName(name);
    } catch {
      return `headers: ${shown} is not a valid HTTP header name`;
    }
    const lower = name.toLowerCase();
    if (REFUSED_HEADER_NAMES.has(lower) || lower.startsWith('webhook-')) {
      return `headers: ${shown} may not be set: the queue sets it, or it frames the request`;
    }
    if (seen.has(lower)) return `headers: ${shown} is given twice (names ignore case)`;
    seen.add(lower);
    if (typeof value !== 'string') return `headers: the value of ${shown} must be a string`;
    if (value.length > MAX_HEADER_VALUE_LENGTH) {
      return `headers: the value of ${shown} must be at most ${MAX_HEADER_VALUE_LENGTH} characters`;
    }
    try {
      validateHeaderValue(lower, value);
    } catch {
      return `headers: the value of ${shown} holds characters a header cannot carry`;
    }
  }
  return undefined;
}

/** The headers as stored: names in lower case (HTTP names ignore case); null for none. */
export function storedHeaders(
  headers: Record<string, string> | null,
): Record<string, string> | null {
  if (headers === null || Object.keys(headers).length === 0) return null;
  return Object.fromEntries(Object.entries(headers).map(([n, v]) => [n.toLowerCase(), v]));
}

/** A request body as the audit log keeps it: the headers' names, never their values. */
export function withoutHeaderValues(body: Record<string, unknown>): Record<string, unknown> {
  const headers = body.headers;
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return body;
  return { ...body, headers: Object.keys(headers) };
}

/** The settings both POST /webhooks and PATCH /webhooks/{id} take. */
export class WebhookMannersDto {
  @ApiPropertyOptional({
    enum: ON_EXHAUSTED,
    example: 'block',
    description:
      'After the retries are used up the head is dead-lettered and its line moves on ' +
      '(dead_letter, the default) or stops there, blocked, until it is redriven or skipped (block)',
  })
  @IsOptional()
  @IsIn(ON_EXHAUSTED)
  on_exhausted?: OnExhausted;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    nullable: true,
    example: { Authorization: 'Bearer s3cret' },
    description:
      `Up to ${MAX_HEADERS} static headers sent on every attempt. Values are write-only: reads ` +
      'show the names only (header_names). Refused: content-type, host, webhook-*, user-agent ' +
      'and the headers that frame a request (content-length, transfer-encoding, connection, …). ' +
      'PATCH replaces the whole set; null or {} removes them all.',
  })
  @IsOptional()
  @IsObject()
  headers?: Record<string, string> | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 1,
    maximum: 10000,
    example: 5,
    description: 'At most this many attempts at once, across all workers (null: no limit)',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10000)
  max_in_flight?: number | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 0.01,
    maximum: 10000,
    example: 10,
    description:
      'Attempts started per second, across all workers (null: no limit). A token bucket: it ' +
      'holds up to max(1, rate) attempts, so after a quiet second one second’s worth may start ' +
      'at once; 0.5 is one attempt every 2 seconds.',
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.01)
  @Max(10000)
  rate_limit_per_second?: number | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 1,
    maximum: 1000,
    example: 8,
    description: 'Failed attempts before the head is exhausted (null: MAX_RETRIES)',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1000)
  max_retries?: number | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    minimum: 0.001,
    maximum: 1000,
    example: 2,
    description:
      'The delay after the n-th failed attempt is backoff_factor^n seconds, ±10 % (null: ' +
      'BACKOFF_FACTOR)',
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.001)
  @Max(1000)
  backoff_factor?: number | null;
}

/** The settings' columns, in the order of MANNERS_KEYS. */
export const MANNERS_COLUMNS = {
  on_exhausted: 'on_exhausted',
  headers: 'headers',
  max_in_flight: 'max_in_flight',
  rate_limit_per_second: 'rate_limit_per_second',
  max_retries: 'max_retries',
  backoff_factor: 'backoff_factor',
} as const satisfies Record<keyof WebhookMannersDto, string>;

/** The settings given in a request (absent keys left out), as column → value, headers stored. */
export function mannersOf(input: WebhookMannersDto): [string, unknown][] {
  return (Object.keys(MANNERS_COLUMNS) as (keyof WebhookMannersDto)[])
    .filter((key) => input[key] !== undefined)
    .map((key) => [
      MANNERS_COLUMNS[key],
      key === 'headers'
        ? jsonOrNull(storedHeaders(input.headers ?? null))
        : key === 'on_exhausted'
          ? (input.on_exhausted ?? 'dead_letter') // null: the default
          : input[key],
    ]);
}

const jsonOrNull = (value: unknown) => (value === null ? null : JSON.stringify(value));

/** Whether a request changes the settings that webhook_limits follows. */
export const changesLimits = (input: WebhookMannersDto): boolean =>
  input.max_in_flight !== undefined || input.rate_limit_per_second !== undefined;

/**
 * Keeps webhook $1's webhook_limits row (the buckets the claim locks) in step with its
 * max_in_flight and rate_limit_per_second, in the transaction that changed them: none without
 * either; a new one starts with a full bucket; a changed one keeps its tokens, up to the new
 * bucket size, and drops its hints, so the next claim recomputes them.
 */
export const SYNC_WEBHOOK_LIMITS = `
WITH w AS (
  SELECT id, max_in_flight, rate_limit_per_second FROM webhooks WHERE id = $1
), dropped AS (
  DELETE FROM webhook_limits b USING w
  WHERE b.webhook_id = w.id AND w.max_in_flight IS NULL AND w.rate_limit_per_second IS NULL
  RETURNING 1
)
INSERT INTO webhook_limits (webhook_id, tokens)
SELECT id, greatest(1, coalesce(rate_limit_per_second, 1)) FROM w
WHERE max_in_flight IS NOT NULL OR rate_limit_per_second IS NOT NULL
ON CONFLICT (webhook_id) DO UPDATE
SET tokens = least(webhook_limits.tokens, EXCLUDED.tokens), tokens_at = NULL, full_until = NULL
`;
