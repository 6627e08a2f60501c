import { promises as dns } from 'node:dns';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { EnvironmentVariables } from './env.schema.js';

/** The checked, typed configuration every part of the system reads. */
export abstract class AppConfig {
  abstract readonly databaseUrl: string | undefined;
  abstract readonly port: number;
  abstract readonly maxRetries: number;
  abstract readonly backoffFactor: number;
  abstract readonly backoffMaxSeconds: number;
  abstract readonly workerConcurrency: number;
  /** Lines of one webhook in flight at once, per worker: what one hung receiver can hold. */
  abstract readonly workerConcurrencyPerWebhook: number;
  abstract readonly deliveryTimeoutMs: number;
  abstract readonly maxPayloadBytes: number;
  abstract readonly apiKeys: readonly string[];
  abstract readonly webhookAllowPrivateNetworks: boolean;
  /** How long a rotated-out secret keeps signing beside the new one. */
  abstract readonly webhookSecretGraceSeconds: number;
  abstract readonly pollIntervalMs: number;
  /** DNS servers for webhook host names (ip or ip:port); empty: the system's (resolv.conf). */
  abstract readonly webhookDnsServers: readonly string[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Validates the environment and returns a frozen config. Throws a ConfigError whose message is one
 * line per bad variable, naming it, so a process can print it and exit before anything starts.
 */
export function loadConfig(env: Record<string, string | undefined>): AppConfig {
  const known = Object.keys(new EnvironmentVariables());
  const raw: Record<string, string> = {};
  for (const name of [
    ...known,
    'DATABASE_URL',
    'API_KEYS',
    'WORKER_CONCURRENCY_PER_WEBHOOK',
    'WEBHOOK_DNS_SERVERS',
  ]) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const vars = plainToInstance(EnvironmentVariables, raw);
  const errors = validateSync(vars, { forbidUnknownValues: true });
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const why = Object.values(e.constraints ?? {})[0] ?? 'is invalid';
      const shown = why.startsWith(e.property) ? why : `${e.property} ${why}`;
      return `invalid configuration: ${shown} (got ${JSON.stringify(raw[e.property])})`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  const perWebhook = vars.WORKER_CONCURRENCY_PER_WEBHOOK ?? Math.ceil(vars.WORKER_CONCURRENCY / 2);
  if (perWebhook > vars.WORKER_CONCURRENCY) {
    throw new ConfigError(
      `invalid configuration: WORKER_CONCURRENCY_PER_WEBHOOK must be at most WORKER_CONCURRENCY (${vars.WORKER_CONCURRENCY}) (got ${JSON.stringify(raw.WORKER_CONCURRENCY_PER_WEBHOOK)})`,
    );
  }
  const dnsServers = (vars.WEBHOOK_DNS_SERVERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  try {
    new dns.Resolver().setServers(dnsServers);
  } catch {
    throw new ConfigError(
      `invalid configuration: WEBHOOK_DNS_SERVERS must be comma-separated IP addresses, each with an optional :port ([v6]:port) (got ${JSON.stringify(raw.WEBHOOK_DNS_SERVERS)})`,
    );
  }
  return Object.freeze({
    databaseUrl: vars.DATABASE_URL,
    port: vars.PORT,
    maxRetries: vars.MAX_RETRIES,
    backoffFactor: vars.BACKOFF_FACTOR,
    backoffMaxSeconds: vars.BACKOFF_MAX_SECONDS,
    workerConcurrency: vars.WORKER_CONCURRENCY,
    workerConcurrencyPerWebhook: perWebhook,
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
    webhookDnsServers: Object.freeze(dnsServers),
  });
}
