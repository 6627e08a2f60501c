import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { StartupError } from '../common/startup-error.js';
import { EnvironmentVariables } from './env.schema.js';

/** The checked, typed configuration every part of the system reads. */
export abstract class AppConfig {
  abstract readonly databaseUrl: string | undefined;
  abstract readonly port: number;
  abstract readonly maxRetries: number;
  abstract readonly backoffFactor: number;
  abstract readonly backoffMaxSeconds: number;
  abstract readonly workerConcurrency: number;
  abstract readonly deliveryTimeoutMs: number;
  abstract readonly maxPayloadBytes: number;
  abstract readonly apiKeys: readonly string[];
  abstract readonly webhookAllowPrivateNetworks: boolean;
  /** How long a rotated-out secret keeps signing beside the new one. */
  abstract readonly webhookSecretGraceSeconds: number;
  abstract readonly pollIntervalMs: number;
}

export class ConfigError extends StartupError {
  override name = 'ConfigError';
}

/** Reads `.env` from the working directory into process.env when present; variables set win. */
export function loadDotEnv(): void {
  try {
    process.loadEnvFile();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** A value of the wrong kind is named as that first ("PORT must be an integer", not a range). */
const KIND_CONSTRAINTS = ['isInt', 'isNumber', 'isBoolean', 'isString', 'matches'];

/**
 * Validates the environment and returns a frozen config. Throws a ConfigError whose message is one
 * line per bad variable, naming it, so a process can print it and exit before anything starts.
 */
export function loadConfig(env: Record<string, string | undefined>): AppConfig {
  const known = Object.keys(new EnvironmentVariables());
  const raw: Record<string, string> = {};
  for (const name of [...known, 'DATABASE_URL', 'API_KEYS']) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const vars = plainToInstance(EnvironmentVariables, raw);
  const errors = validateSync(vars, { forbidUnknownValues: true });
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const constraints = e.constraints ?? {};
      const kind = KIND_CONSTRAINTS.find((c) => c in constraints);
      const why = constraints[kind ?? ''] ?? Object.values(constraints)[0] ?? 'is invalid';
      const shown = why.startsWith(e.property) ? why : `${e.property} ${why}`;
      return `invalid configuration: ${shown} (got ${JSON.stringify(raw[e.property])})`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  return Object.freeze({
    databaseUrl: vars.DATABASE_URL,
    port: vars.PORT,
    maxRetries: vars.MAX_RETRIES,
    backoffFactor: vars.BACKOFF_FACTOR,
    backoffMaxSeconds: vars.BACKOFF_MAX_SECONDS,
    workerConcurrency: vars.WORKER_CONCURRENCY,
    deliveryTimeoutMs: vars.DELIVERY_TIMEOUT_MS,
    maxPayloadBytes: vars.MAX_PAYLOAD_BYTES,
    apiKeys: Object.freeze(
      (vars.API_KEYS ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    ),
    webhookAllowPrivateNetworks: vars.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    webhookSecretGraceSeconds: vars.WEBHOOK_SECRET_GRACE_SECONDS,
    pollIntervalMs: vars.POLL_INTERVAL_MS,
  });
}
