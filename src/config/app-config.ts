import { promises as dns } from 'node:dns';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { StartupError } from '../common/startup-error.js';
import { databaseSchemaFrom } from '../database/schema.js';
import { EnvironmentVariables, LogFormat, LogLevel } from './env.schema.js';

/** One API_KEYS entry: `name:key`, or a bare key named `key-<position>`. */
export interface ApiKeyEntry {
  /** Who presents it, in the audit log; not a secret. */
  readonly name: string;
  readonly key: string;
}

/** The checked, typed configuration every part of the system reads. */
export abstract class AppConfig {
  abstract readonly databaseUrl: string | undefined;
  /** DATABASE_LISTEN_URL, else DATABASE_URL: where the worker LISTENs. */
  abstract readonly databaseListenUrl: string | undefined;
  /** DATABASE_SCHEMA: where the queue's tables and functions are (default public). */
  abstract readonly databaseSchema: string;
  abstract readonly port: number;
  abstract readonly maxRetries: number;
  abstract readonly backoffFactor: number;
  abstract readonly backoffMaxSeconds: number;
  abstract readonly workerConcurrency: number;
  /** Lines of one webhook in flight at once, per worker: what one hung receiver can hold. */
  abstract readonly workerConcurrencyPerWebhook: number;
  abstract readonly deliveryTimeoutMs: number;
  /** Whether recording a result waits for the WAL flush (false: docs/delivery.md says what it risks). */
  abstract readonly recordSynchronousCommit: boolean;
  abstract readonly maxPayloadBytes: number;
  /** The largest request body of a batch publish. */
  abstract readonly maxBatchBodyBytes: number;
  /** Age after which delivered deliveries go (retention); 0 = never. */
  abstract readonly retentionDeliveredSeconds: number;
  /** Age after which dead deliveries go (retention); 0 = never. */
  abstract readonly retentionDeadSeconds: number;
  /** Age after which audit log entries go (retention); 0 = never. */
  abstract readonly retentionAuditSeconds: number;
  abstract readonly apiKeys: readonly ApiKeyEntry[];
  /** Serve without API keys on a non-loopback address, on purpose. */
  abstract readonly apiOpen: boolean;
  /** The address the API binds; undefined: every interface. */
  abstract readonly apiListenAddress: string | undefined;
  /** Where the host publishes the API's port (compose); undefined: where it listens. */
  abstract readonly apiPublishAddress: string | undefined;
  abstract readonly apiRequestTimeoutMs: number;
  abstract readonly apiKeepAliveTimeoutMs: number;
  abstract readonly apiMaxConnections: number;
  abstract readonly maxWebhooksPerTopic: number;
  abstract readonly webhookAllowPrivateNetworks: boolean;
  /** How long a rotated-out secret keeps signing beside the new one. */
  abstract readonly webhookSecretGraceSeconds: number;
  /** Disable a webhook whose attempts have all failed this long (DESIGN §7); 0 = never. */
  abstract readonly webhookDisableAfterSeconds: number;
  abstract readonly pollIntervalMs: number;
  /**
   * The worker's /metrics and /health port; 0 = no metrics server. Taken: the next free one
   * (WorkerMetricsServer), so a second worker on a host does not die of the default.
   */
  abstract readonly metricsPort: number;
  /** The address the worker's metrics listener binds. */
  abstract readonly metricsHost: string;
  abstract readonly logFormat: LogFormat;
  abstract readonly logLevel: LogLevel;
  /** DNS servers for webhook host names (ip or ip:port); empty: the system's (resolv.conf). */
  abstract readonly webhookDnsServers: readonly string[];
}

export class ConfigError extends StartupError {
  override name = 'ConfigError';
}

export const MIN_API_KEY_LENGTH = 32;
const MIN_API_KEY_DISTINCT_CHARACTERS = 10;

/**
 * Why an API key is too weak or can never be presented, or undefined. A key travels in an
 * `Authorization: Bearer` header, so it is printable ASCII without spaces (anything else could
 * never authenticate). At least 32 characters with at least 10 different ones: a random key of
 * that length passes (hex included), "aaaa…" and a short word repeated do not.
 */
export function apiKeyProblem(key: string): string | undefined {
  if (!/^[\x21-\x7e]*$/.test(key)) {
    return 'has characters other than printable ASCII, so no client could ever send it';
  }
  if (key.length < MIN_API_KEY_LENGTH) {
    return `is ${key.length} characters long; use at least ${MIN_API_KEY_LENGTH}`;
  }
  if (new Set(key).size < MIN_API_KEY_DISTINCT_CHARACTERS) {
    return `has only ${new Set(key).size} different characters; it is too easy to guess`;
  }
  return undefined;
}

/** The default MAX_BATCH_BODY_BYTES: 1,000 messages of about 8 KB each. */
const DEFAULT_MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024;
/** Room in a request for everything around a payload (partition key, JSON syntax). */
export const REQUEST_OVERHEAD_BYTES = 16 * 1024;

const API_KEY_ADVICE = `generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`;

/** A key's name before its key: `ci:…`, `alice@example.com:…`. */
const API_KEY_NAME = /^([A-Za-z0-9][A-Za-z0-9_.@-]{0,63}):(.*)$/;

function parseApiKeys(raw: string | undefined): readonly ApiKeyEntry[] {
  const entries = (raw ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
    .map((entry, index): ApiKeyEntry => {
      const named = API_KEY_NAME.exec(entry);
      return named ? { name: named[1], key: named[2] } : { name: `key-${index + 1}`, key: entry };
    });
  const names = new Set<string>();
  entries.forEach(({ name, key }, index) => {
    const problem = apiKeyProblem(key);
    // The key itself is never echoed: it is a secret, even when weak. Its name is not.
    if (problem) {
      throw new ConfigError(
        `invalid configuration: API_KEYS key ${index + 1} of ${entries.length} (${name}) ${problem}; ${API_KEY_ADVICE}`,
      );
    }
    if (names.has(name)) {
      throw new ConfigError(
        `invalid configuration: API_KEYS names "${name}" twice; give each key its own name`,
      );
    }
    names.add(name);
  });
  return Object.freeze(entries.map((entry) => Object.freeze(entry)));
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
  for (const name of [
    ...known,
    'DATABASE_URL',
    'DATABASE_LISTEN_URL',
    'API_KEYS',
    'API_LISTEN_ADDRESS',
    'API_PUBLISH_ADDRESS',
    'WORKER_CONCURRENCY_PER_WEBHOOK',
    'WEBHOOK_DNS_SERVERS',
    'MAX_BATCH_BODY_BYTES',
  ]) {
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
  let databaseSchema: string;
  try {
    databaseSchema = databaseSchemaFrom(env);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const perWebhook = vars.WORKER_CONCURRENCY_PER_WEBHOOK ?? Math.ceil(vars.WORKER_CONCURRENCY / 2);
  if (perWebhook > vars.WORKER_CONCURRENCY) {
    throw new ConfigError(
      `invalid configuration: WORKER_CONCURRENCY_PER_WEBHOOK must be at most WORKER_CONCURRENCY (${vars.WORKER_CONCURRENCY}) (got ${JSON.stringify(raw.WORKER_CONCURRENCY_PER_WEBHOOK)})`,
    );
  }
  const maxBatchBodyBytes =
    vars.MAX_BATCH_BODY_BYTES ??
    Math.max(DEFAULT_MAX_BATCH_BODY_BYTES, vars.MAX_PAYLOAD_BYTES + REQUEST_OVERHEAD_BYTES);
  if (maxBatchBodyBytes < vars.MAX_PAYLOAD_BYTES) {
    throw new ConfigError(
      `invalid configuration: MAX_BATCH_BODY_BYTES must be at least MAX_PAYLOAD_BYTES (${vars.MAX_PAYLOAD_BYTES}), so any message can go in a batch (got ${JSON.stringify(raw.MAX_BATCH_BODY_BYTES)})`,
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
    databaseListenUrl: vars.DATABASE_LISTEN_URL ?? vars.DATABASE_URL,
    databaseSchema,
    port: vars.PORT,
    maxRetries: vars.MAX_RETRIES,
    backoffFactor: vars.BACKOFF_FACTOR,
    backoffMaxSeconds: vars.BACKOFF_MAX_SECONDS,
    workerConcurrency: vars.WORKER_CONCURRENCY,
    workerConcurrencyPerWebhook: perWebhook,
    deliveryTimeoutMs: vars.DELIVERY_TIMEOUT_MS,
    recordSynchronousCommit: vars.RECORD_SYNCHRONOUS_COMMIT,
    maxPayloadBytes: vars.MAX_PAYLOAD_BYTES,
    maxBatchBodyBytes,
    retentionDeliveredSeconds: vars.RETENTION_DELIVERED_SECONDS,
    retentionDeadSeconds: vars.RETENTION_DEAD_SECONDS,
    retentionAuditSeconds: vars.RETENTION_AUDIT_SECONDS,
    apiKeys: parseApiKeys(vars.API_KEYS),
    apiOpen: vars.API_OPEN,
    apiListenAddress: vars.API_LISTEN_ADDRESS,
    apiPublishAddress: vars.API_PUBLISH_ADDRESS,
    apiRequestTimeoutMs: vars.API_REQUEST_TIMEOUT_MS,
    apiKeepAliveTimeoutMs: vars.API_KEEP_ALIVE_TIMEOUT_MS,
    apiMaxConnections: vars.API_MAX_CONNECTIONS,
    maxWebhooksPerTopic: vars.MAX_WEBHOOKS_PER_TOPIC,
    webhookAllowPrivateNetworks: vars.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    webhookSecretGraceSeconds: vars.WEBHOOK_SECRET_GRACE_SECONDS,
    webhookDisableAfterSeconds: vars.WEBHOOK_DISABLE_AFTER_SECONDS,
    pollIntervalMs: vars.POLL_INTERVAL_MS,
    metricsPort: vars.METRICS_PORT,
    metricsHost: vars.METRICS_HOST,
    logFormat: vars.LOG_FORMAT,
    logLevel: vars.LOG_LEVEL,
    webhookDnsServers: Object.freeze(dnsServers),
  });
}
