import { ConfigError, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('gives the defaults of DESIGN §6 for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      port: 8000,
      maxRetries: 5,
      backoffFactor: 2,
      backoffMaxSeconds: 3600,
      workerConcurrency: 10,
      workerConcurrencyPerWebhook: 5,
      deliveryTimeoutMs: 10000,
      maxPayloadBytes: 1048576,
      apiKeys: [],
      webhookAllowPrivateNetworks: false,
      webhookSecretGraceSeconds: 86400,
      pollIntervalMs: 1000,
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
      API_KEYS: 'key-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      POLL_INTERVAL_MS: '250',
      WEBHOOK_DNS_SERVERS: '10.0.0.2, [2001:db8::53]:5353,127.0.0.1:53',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u:p@db.internal:5432/queue',
      port: 9000,
      maxRetries: 3,
      backoffFactor: 0.2,
      apiKeys: ['key-aaaaaaaaaaaaaaaa', 'key-bbbbbbbbbbbbbbbb'],
      webhookAllowPrivateNetworks: true,
      pollIntervalMs: 250,
      workerConcurrency: 4,
      workerConcurrencyPerWebhook: 3,
      webhookDnsServers: ['10.0.0.2', '[2001:db8::53]:5353', '127.0.0.1:53'],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    ['MAX_RETRIES', '-1'],
    ['MAX_RETRIES', '1.5'],
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['DATABASE_URL', 'not a url'],
    ['BACKOFF_FACTOR', 'fast'],
    ['WORKER_CONCURRENCY', '0'],
    ['WEBHOOK_ALLOW_PRIVATE_NETWORKS', 'maybe'],
    ['API_KEYS', 'short'],
    ['WORKER_CONCURRENCY_PER_WEBHOOK', '0'],
    ['WORKER_CONCURRENCY_PER_WEBHOOK', '11'],
    ['WEBHOOK_DNS_SERVERS', 'dns.example.com'],
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
