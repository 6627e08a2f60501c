import type { AppConfig } from '../config/app-config.js';

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

/**
 * Why the API must not start with this configuration, or undefined. Without API keys it may only
 * be reachable on a loopback address, unless API_OPEN=true says an open API is meant: where the
 * host publishes it (API_PUBLISH_ADDRESS, set by compose, whose container listens on every
 * interface of its own network), else where it listens (npm start: 127.0.0.1). `node
 * dist/main.js` on every interface fails closed.
 */
export function apiExposureProblem(config: AppConfig): string | undefined {
  if (config.apiKeys.length > 0 || config.apiOpen) return undefined;
  const published = config.apiPublishAddress;
  if (published !== undefined) {
    if (isLoopback(published)) return undefined;
    return (
      `API_KEYS is not set, and the API is published on ${published} (API_PUBLISH_ADDRESS). ` +
      'Set API_KEYS (comma-separated keys, see SECURITY.md), or publish it on 127.0.0.1, ' +
      'or API_OPEN=true to serve an open API on purpose'
    );
  }
  const address = config.apiListenAddress;
  if (address !== undefined && isLoopback(address)) return undefined;
  return (
    `API_KEYS is not set, and the API would listen on ${address ?? 'every interface'}. ` +
    'Set API_KEYS (comma-separated keys, see SECURITY.md), or API_LISTEN_ADDRESS=127.0.0.1, ' +
    'or API_OPEN=true to serve an open API on purpose'
  );
}

/** How the start-up line names the listening address. */
export function listenUrl(address: string | undefined, port: number): string {
  const host = address === undefined || isLoopback(address) ? 'localhost' : address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
