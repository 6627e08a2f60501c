import { createClient, createConfig } from './generated/client/index.js';
import type { Client } from './generated/client/index.js';

/** Every operation of the REST API, typed from its OpenAPI document (generated). */
export * from './generated/sdk.gen.js';
export type * from './generated/types.gen.js';
export type { Client } from './generated/client/index.js';
export * from './publish.js';

export interface PgwqClientOptions {
  /** Where the API is, e.g. http://localhost:8000 */
  baseUrl: string;
  /** One of the API's API_KEYS (sent as Authorization: Bearer …); none for an open API. */
  apiKey?: string;
}

/**
 * A client for one API; pass it as `client` to each operation:
 * `await topicsControllerCreate({ client, body: { name: 'orders' }, throwOnError: true })`.
 */
export function createPgwqClient(options: PgwqClientOptions): Client {
  return createClient(
    createConfig({
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {},
    }),
  );
}
