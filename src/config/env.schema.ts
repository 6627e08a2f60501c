import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
} from 'class-validator';

const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
const toBoolean = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  return value;
};

/**
 * Every environment variable of DESIGN §6, once, with its default. Values arrive as strings;
 * the transforms turn them into numbers/booleans and the validators reject what is left over.
 */
export class EnvironmentVariables {
  @IsOptional()
  @IsString()
  @Matches(/^postgres(ql)?:\/\/[^\s/]+\/[^\s/?]+(\?\S*)?$/, {
    message: 'DATABASE_URL must look like postgres://user:pass@host:5432/db',
  })
  DATABASE_URL?: string;

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

  @Transform(toNumber)
  @IsInt({ message: 'MAX_PAYLOAD_BYTES must be an integer' })
  @Min(64)
  @Max(64 * 1024 * 1024)
  MAX_PAYLOAD_BYTES = 1048576;

  @IsOptional()
  @IsString()
  @Matches(/^\s*[^\s,]{16,}\s*(,\s*[^\s,]{16,}\s*)*$/, {
    message: 'API_KEYS must be a comma-separated list of keys of at least 16 characters',
  })
  API_KEYS?: string;

  @Transform(toBoolean)
  @IsBoolean({ message: 'WEBHOOK_ALLOW_PRIVATE_NETWORKS must be true or false' })
  WEBHOOK_ALLOW_PRIVATE_NETWORKS = false;

  @Transform(toNumber)
  @IsInt({ message: 'WEBHOOK_SECRET_GRACE_SECONDS must be an integer' })
  @Min(0)
  @Max(30 * 24 * 3600)
  WEBHOOK_SECRET_GRACE_SECONDS = 24 * 3600;

  /** Checked by loadConfig with the resolver's own parser. */
  @IsOptional()
  @IsString()
  WEBHOOK_DNS_SERVERS?: string;

  @Transform(toNumber)
  @IsInt({ message: 'POLL_INTERVAL_MS must be an integer' })
  @Min(10)
  @Max(10 * 60 * 1000)
  POLL_INTERVAL_MS = 1000;
}
