import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsIP,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateIf,
} from 'class-validator';

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** Nest's levels, most verbose first; LOG_LEVEL names the least severe one printed. */
export const LOG_LEVELS = ['verbose', 'debug', 'log', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
const toLowerCase = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? value.trim().toLowerCase() : value;
const toBoolean = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  return value;
};

const POSTGRES_URL = /^postgres(ql)?:\/\/[^\s/]+\/[^\s/?]+(\?\S*)?$/;

/**
 * Every environment variable of DESIGN §6, once, with its default. Values arrive as strings;
 * the transforms turn them into numbers/booleans and the validators reject what is left over.
 */
export class EnvironmentVariables {
  @IsOptional()
  @IsString()
  @Matches(POSTGRES_URL, {
    message: 'DATABASE_URL must look like postgres://user:pass@host:5432/db',
  })
  DATABASE_URL?: string;

  /** The worker's LISTEN connection; default DATABASE_URL. Never through a transaction pooler. */
  @IsOptional()
  @IsString()
  @Matches(POSTGRES_URL, {
    message: 'DATABASE_LISTEN_URL must look like postgres://user:pass@host:5432/db',
  })
  DATABASE_LISTEN_URL?: string;

  @Transform(toNumber)
  @IsInt({ message: 'PORT must be an integer' })
  @Min(0)
  @Max(65535)
  PORT = 8000;

  @Transform(toNumber)
  @IsInt({ message: 'MAX_RETRIES must be an integer' })
  @Min(1)
  @Max(1000)
  MAX_RETRIES = 5;

  @Transform(toNumber)
  @IsNumber(
    { allowNaN: false, allowInfinity: false },
    { message: 'BACKOFF_FACTOR must be a number' },
  )
  @Min(0.001)
  @Max(1000)
  BACKOFF_FACTOR = 2.0;

  @Transform(toNumber)
  @IsNumber(
    { allowNaN: false, allowInfinity: false },
    { message: 'BACKOFF_MAX_SECONDS must be a number' },
  )
  @Min(0)
  @Max(7 * 24 * 3600)
  BACKOFF_MAX_SECONDS = 3600;

  @Transform(toNumber)
  @IsInt({ message: 'WORKER_CONCURRENCY must be an integer' })
  @Min(1)
  @Max(1000)
  WORKER_CONCURRENCY = 10;

  /** Unset: half of WORKER_CONCURRENCY, rounded up (loadConfig). */
  @IsOptional()
  @Transform(toNumber)
  @IsInt({ message: 'WORKER_CONCURRENCY_PER_WEBHOOK must be an integer' })
  @Min(1)
  @Max(1000)
  WORKER_CONCURRENCY_PER_WEBHOOK?: number;

  @Transform(toNumber)
  @IsInt({ message: 'DELIVERY_TIMEOUT_MS must be an integer' })
  @Min(100)
  @Max(10 * 60 * 1000)
  DELIVERY_TIMEOUT_MS = 10000;

  // false trades durability of the last results for speed: docs/delivery.md, "Synchronous commit of results".
  @Transform(toBoolean)
  @IsBoolean({ message: 'RECORD_SYNCHRONOUS_COMMIT must be true or false' })
  RECORD_SYNCHRONOUS_COMMIT = true;

  @Transform(toNumber)
  @IsInt({ message: 'MAX_PAYLOAD_BYTES must be an integer' })
  @Min(64)
  @Max(64 * 1024 * 1024)
  MAX_PAYLOAD_BYTES = 1048576;

  /** Unset: 8 MiB, or MAX_PAYLOAD_BYTES and room around it when that is more (loadConfig). */
  @IsOptional()
  @Transform(toNumber)
  @IsInt({ message: 'MAX_BATCH_BODY_BYTES must be an integer' })
  @Min(1024)
  @Max(256 * 1024 * 1024)
  MAX_BATCH_BODY_BYTES?: number;

  /** Delivered deliveries (with their attempts) are deleted after this long; 0 = kept. */
  @Transform(toNumber)
  @IsInt({ message: 'RETENTION_DELIVERED_SECONDS must be an integer' })
  @Min(0)
  @Max(100 * 365 * 24 * 3600)
  RETENTION_DELIVERED_SECONDS = 7 * 24 * 3600;

  /** Dead deliveries (with their attempts) are deleted after this long; 0 = kept. */
  @Transform(toNumber)
  @IsInt({ message: 'RETENTION_DEAD_SECONDS must be an integer' })
  @Min(0)
  @Max(100 * 365 * 24 * 3600)
  RETENTION_DEAD_SECONDS = 30 * 24 * 3600;

  /** Audit log entries are deleted after this long; 0 = kept. */
  @Transform(toNumber)
  @IsInt({ message: 'RETENTION_AUDIT_SECONDS must be an integer' })
  @Min(0)
  @Max(100 * 365 * 24 * 3600)
  RETENTION_AUDIT_SECONDS = 365 * 24 * 3600;

  // Each key is checked for strength by loadConfig (apiKeyProblem), with a message per key.
  @IsOptional()
  @IsString()
  API_KEYS?: string;

  @Transform(toBoolean)
  @IsBoolean({ message: 'API_OPEN must be true or false' })
  API_OPEN = false;

  @IsOptional()
  @ValidateIf((vars: EnvironmentVariables) => vars.API_LISTEN_ADDRESS !== 'localhost')
  @IsIP(undefined, { message: 'API_LISTEN_ADDRESS must be an IP address or localhost' })
  API_LISTEN_ADDRESS?: string;

  /**
   * Where the host publishes the API's port, when that is not where the API listens: compose
   * sets it (the API listens on every interface of its container). Loopback: an open API is fine.
   */
  @IsOptional()
  @ValidateIf((vars: EnvironmentVariables) => vars.API_PUBLISH_ADDRESS !== 'localhost')
  @IsIP(undefined, { message: 'API_PUBLISH_ADDRESS must be an IP address or localhost' })
  API_PUBLISH_ADDRESS?: string;

  @Transform(toNumber)
  @IsInt({ message: 'API_REQUEST_TIMEOUT_MS must be an integer' })
  @Min(1000)
  @Max(10 * 60 * 1000)
  API_REQUEST_TIMEOUT_MS = 30_000;

  @Transform(toNumber)
  @IsInt({ message: 'API_KEEP_ALIVE_TIMEOUT_MS must be an integer' })
  @Min(1000)
  @Max(60 * 60 * 1000)
  API_KEEP_ALIVE_TIMEOUT_MS = 65_000;

  @Transform(toNumber)
  @IsInt({ message: 'API_MAX_CONNECTIONS must be an integer' })
  @Min(1)
  @Max(1_000_000)
  API_MAX_CONNECTIONS = 1000;

  @Transform(toNumber)
  @IsInt({ message: 'MAX_WEBHOOKS_PER_TOPIC must be an integer' })
  @Min(1)
  @Max(100_000)
  MAX_WEBHOOKS_PER_TOPIC = 100;

  @Transform(toBoolean)
  @IsBoolean({ message: 'WEBHOOK_ALLOW_PRIVATE_NETWORKS must be true or false' })
  WEBHOOK_ALLOW_PRIVATE_NETWORKS = false;

  @Transform(toNumber)
  @IsInt({ message: 'WEBHOOK_SECRET_GRACE_SECONDS must be an integer' })
  @Min(0)
  @Max(30 * 24 * 3600)
  WEBHOOK_SECRET_GRACE_SECONDS = 24 * 3600;

  @Transform(toNumber)
  @IsInt({ message: 'WEBHOOK_DISABLE_AFTER_SECONDS must be an integer (seconds; 0 = never)' })
  @Min(0)
  @Max(365 * 24 * 3600)
  WEBHOOK_DISABLE_AFTER_SECONDS = 5 * 24 * 3600;

  /** Checked by loadConfig with the resolver's own parser. */
  @IsOptional()
  @IsString()
  WEBHOOK_DNS_SERVERS?: string;

  @Transform(toNumber)
  @IsInt({ message: 'POLL_INTERVAL_MS must be an integer' })
  @Min(10)
  @Max(10 * 60 * 1000)
  POLL_INTERVAL_MS = 1000;

  @Transform(toNumber)
  @IsInt({ message: 'METRICS_PORT must be an integer' })
  @Min(0)
  @Max(65535)
  METRICS_PORT = 9464;

  /** Where the worker's metrics listener binds: loopback unless told (compose: 0.0.0.0). */
  @ValidateIf((vars: EnvironmentVariables) => vars.METRICS_HOST !== 'localhost')
  @IsIP(undefined, { message: 'METRICS_HOST must be an IP address or localhost' })
  METRICS_HOST = '127.0.0.1';

  @Transform(toLowerCase)
  @IsIn(LOG_FORMATS, { message: `LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}` })
  LOG_FORMAT: LogFormat = 'text';

  @Transform(toLowerCase)
  @IsIn(LOG_LEVELS, { message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` })
  LOG_LEVEL: LogLevel = 'log';
}
