import { ConfigError, loadConfig } from './app-config.js';

// What `node -e "…randomBytes(32).toString('base64url')"` prints, and `openssl rand -hex 16`.
const KEY_A = 'Jx3kP0qL9vW2mZ8tR5yB7nC1dF4gH6sA0eU2iO9pQ3w';
const KEY_B = '9f86d081884c7d659a2feaa0c55ad015';

describe('loadConfig', () => {
  it('gives the defaults of DESIGN §6 for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      databaseListenUrl: undefined,
      databaseSchema: 'public',
      port: 8000,
      maxRetries: 5,
      backoffFactor: 2,
      backoffMaxSeconds: 3600,
      workerConcurrency: 10,
      workerConcurrencyPerWebhook: 5,
      deliveryTimeoutMs: 10000,
      recordSynchronousCommit: true,
      maxPayloadBytes: 1048576,
      maxBatchBodyBytes: 8388608,
      retentionDeliveredSeconds: 604800,
      retentionDeadSeconds: 2592000,
      retentionAuditSeconds: 31536000,
      apiKeys: [],
      apiOpen: false,
      apiListenAddress: undefined,
      apiPublishAddress: undefined,
      apiRequestTimeoutMs: 30000,
      apiKeepAliveTimeoutMs: 65000,
      apiMaxConnections: 1000,
      maxWebhooksPerTopic: 100,
      webhookAllowPrivateNetworks: false,
      webhookSecretGraceSeconds: 86400,
      webhookDisableAfterSeconds: 432000,
      pollIntervalMs: 1000,
      metricsPort: 9464,
      metricsHost: '127.0.0.1',
      logFormat: 'text',
      logLevel: 'log',
      webhookDnsServers: [],
    });
  });

  it('reads and converts every variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@db.internal:5432/queue',
      PORT: '9000',
      MAX_RETRIES: '3',
      BACKOFF_FACTOR: '0.2',
      BACKOFF_MAX_SECONDS: '60',
      WORKER_CONCURRENCY: '4',
      WORKER_CONCURRENCY_PER_WEBHOOK: '3',
      DELIVERY_TIMEOUT_MS: '2500',
      MAX_PAYLOAD_BYTES: '2048',
      API_KEYS: `${KEY_A}, ${KEY_B}`,
      API_OPEN: 'true',
      API_LISTEN_ADDRESS: '::1',
      API_REQUEST_TIMEOUT_MS: '5000',
      MAX_WEBHOOKS_PER_TOPIC: '7',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      POLL_INTERVAL_MS: '250',
      METRICS_PORT: '0',
      METRICS_HOST: '0.0.0.0',
      LOG_FORMAT: 'JSON',
      LOG_LEVEL: 'debug',
      WEBHOOK_DNS_SERVERS: '10.0.0.2, [2001:db8::53]:5353,127.0.0.1:53',
      WEBHOOK_DISABLE_AFTER_SECONDS: '0',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u:p@db.internal:5432/queue',
      port: 9000,
      maxRetries: 3,
      backoffFactor: 0.2,
      apiKeys: [
        { name: 'key-1', key: KEY_A },
        { name: 'key-2', key: KEY_B },
      ],
      apiOpen: true,
      apiListenAddress: '::1',
      apiRequestTimeoutMs: 5000,
      maxWebhooksPerTopic: 7,
      webhookAllowPrivateNetworks: true,
      pollIntervalMs: 250,
      metricsPort: 0,
      metricsHost: '0.0.0.0',
      logFormat: 'json',
      logLevel: 'debug',
      workerConcurrency: 4,
      workerConcurrencyPerWebhook: 3,
      webhookDnsServers: ['10.0.0.2', '[2001:db8::53]:5353', '127.0.0.1:53'],
      webhookDisableAfterSeconds: 0,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads the retention settings, 0 turning each off, and fits the batch limit to big payloads', () => {
    expect(
      loadConfig({ RETENTION_DELIVERED_SECONDS: '0', RETENTION_DEAD_SECONDS: '3600' }),
    ).toMatchObject({ retentionDeliveredSeconds: 0, retentionDeadSeconds: 3600 });
    expect(loadConfig({ MAX_PAYLOAD_BYTES: String(16 * 1024 * 1024) }).maxBatchBodyBytes).toBe(
      16 * 1024 * 1024 + 16 * 1024,
    );
    expect(loadConfig({ MAX_BATCH_BODY_BYTES: '2097152' }).maxBatchBodyBytes).toBe(2097152);
  });

  it('LISTENs on DATABASE_URL unless DATABASE_LISTEN_URL says otherwise', () => {
    const pooled = 'postgres://u:p@pgbouncer:6432/queue';
    const direct = 'postgres://u:p@db.internal:5432/queue';
    expect(loadConfig({ DATABASE_URL: pooled }).databaseListenUrl).toBe(pooled);
    expect(
      loadConfig({ DATABASE_URL: pooled, DATABASE_LISTEN_URL: direct }).databaseListenUrl,
    ).toBe(direct);
  });

  it.each([
    ['MAX_RETRIES', '-1'],
    ['MAX_RETRIES', '1.5'],
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['DATABASE_URL', 'not a url'],
    ['DATABASE_LISTEN_URL', 'pgbouncer:6432'],
    ['BACKOFF_FACTOR', 'fast'],
    ['WORKER_CONCURRENCY', '0'],
    ['WEBHOOK_ALLOW_PRIVATE_NETWORKS', 'maybe'],
    ['API_LISTEN_ADDRESS', '0.0.0.0.0'],
    ['API_PUBLISH_ADDRESS', 'example.com'],
    ['API_REQUEST_TIMEOUT_MS', '10'],
    ['MAX_WEBHOOKS_PER_TOPIC', '0'],
    ['METRICS_PORT', '65536'],
    ['METRICS_PORT', '-1'],
    ['METRICS_HOST', 'everywhere'],
    ['LOG_FORMAT', 'yaml'],
    ['LOG_LEVEL', 'info'],
    ['WORKER_CONCURRENCY_PER_WEBHOOK', '0'],
    ['WORKER_CONCURRENCY_PER_WEBHOOK', '11'],
    ['WEBHOOK_DNS_SERVERS', 'dns.example.com'],
    ['MAX_BATCH_BODY_BYTES', '1048575'],
    ['DATABASE_SCHEMA', 'Queue'],
    ['DATABASE_SCHEMA', 'pgwq; DROP TABLE x'],
    ['DATABASE_SCHEMA', 'pg_catalog'],
    ['MAX_BATCH_BODY_BYTES', 'big'],
    ['RETENTION_DELIVERED_SECONDS', '-1'],
    ['RETENTION_DELIVERED_SECONDS', '1 week'],
    ['RETENTION_DEAD_SECONDS', '2.5'],
    ['WEBHOOK_DISABLE_AFTER_SECONDS', '-1'],
    ['WEBHOOK_DISABLE_AFTER_SECONDS', '5d'],
    ['WEBHOOK_DISABLE_AFTER_SECONDS', '1.5'],
  ])('refuses %s=%s with one line naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain(name);
    expect(message).toContain(JSON.stringify(value));
  });
});

describe('API key strength', () => {
  it.each([
    ['16 characters of anything', 'aaaaaaaaaaaaaaaa', /at least 32/],
    ['a long key of few characters', 'a'.repeat(40), /different characters/],
    ['a word repeated', 'changeme'.repeat(5), /different characters/],
    ['non-ASCII, which no client can send', 'ключ-'.repeat(8) + 'abcdefghij', /printable ASCII/],
  ])('refuses %s at start, naming the key by position only', (_what, key, why) => {
    let error: unknown;
    try {
      loadConfig({ API_KEYS: `${KEY_A},${key}` });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^invalid configuration: API_KEYS key 2 of 2 /);
    expect(message).toMatch(why);
    expect(message).not.toContain(key);
  });
});

describe('API key names', () => {
  it('reads name:key entries and names a bare key by its position', () => {
    expect(loadConfig({ API_KEYS: `alice:${KEY_A}, ${KEY_B}` }).apiKeys).toEqual([
      { name: 'alice', key: KEY_A },
      { name: 'key-2', key: KEY_B },
    ]);
  });

  it('refuses two keys of one name, and checks the key after the name', () => {
    expect(() => loadConfig({ API_KEYS: `ci:${KEY_A},ci:${KEY_B}` })).toThrow(
      /API_KEYS names "ci" twice/,
    );
    expect(() => loadConfig({ API_KEYS: 'ci:short' })).toThrow(/key 1 of 1 \(ci\) is 5 characters/);
  });
});
