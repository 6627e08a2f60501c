import { parseArgs } from 'node:util';
import { ReceiverOptions, WebhookReceiver } from './receiver/receiver.js';
import { generateSecret } from './webhooks/webhook-secret.js';

const USAGE = `npm run receiver -- [options]

A local webhook receiver for a first try: it verifies every signature, checks every partition's
webhook-sequence (duplicates, gaps, order breaks), prints one line per request, and a summary
on Ctrl-C.

  --port N             port to listen on (default 9000; 0 picks a free one)
  --host ADDRESS       address to listen on (default 127.0.0.1)
  --secret whsec_...   the webhook's secret: signatures are checked with it
  --secret-from ID     read the secret of webhook ID through the API (GET /webhooks/ID/secret)
  --new-secret         make a new secret and print it, for the "secret" of POST /webhooks
  --api URL            the API for --secret-from (default http://localhost:8000)
  --api-key KEY        one of the API's API_KEYS, for --secret-from
  --fail-rate R        answer this share of requests (0-1) with 500, to see retries
  --delay-ms N         wait N ms before answering each request
  --help               this text`;

class UsageError extends Error {}

function number(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new UsageError(`--${name} must be a number from 0 to ${max}, not "${text}"`);
  }
  return value;
}

async function readSecret(api: string, webhookId: string, apiKey?: string): Promise<string> {
  if (!/^[1-9][0-9]{0,9}$/.test(webhookId)) {
    throw new UsageError(`--secret-from must be a webhook id, not "${webhookId}"`);
  }
  const url = new URL(`webhooks/${webhookId}/secret`, api.endsWith('/') ? api : `${api}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    const cause = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
    throw new UsageError(`cannot reach the API at ${api} (${cause}); is it running (npm start)?`);
  }
  const body = (await response.json().catch(() => ({}))) as { secret?: string; message?: string };
  if (!response.ok || typeof body.secret !== 'string') {
    const hint = response.status === 401 ? ' (pass one of its API_KEYS with --api-key)' : '';
    throw new UsageError(
      `GET ${url} answered ${response.status}: ${body.message ?? 'no secret'}${hint}`,
    );
  }
  return body.secret;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      secret: { type: 'string' },
      'secret-from': { type: 'string' },
      'new-secret': { type: 'boolean', default: false },
      api: { type: 'string', default: 'http://localhost:8000' },
      'api-key': { type: 'string' },
      'fail-rate': { type: 'string' },
      'delay-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (
    [values.secret, values['secret-from'], values['new-secret'] || undefined].filter(Boolean)
      .length > 1
  ) {
    throw new UsageError('give one of --secret, --secret-from and --new-secret');
  }
  const newSecret = values['new-secret'] ? generateSecret() : undefined;
  const options: ReceiverOptions = {
    port: number('port', values.port, 9000, 65535),
    host: values.host,
    secret: values['secret-from']
      ? await readSecret(values.api, values['secret-from'], values['api-key'])
      : (values.secret ?? newSecret),
    failRate: number('fail-rate', values['fail-rate'], 0, 1),
    delayMs: number('delay-ms', values['delay-ms'], 0, 600_000),
  };
  let receiver: WebhookReceiver;
  try {
    receiver = new WebhookReceiver(options, (line) => console.log(line));
  } catch (error) {
    throw new UsageError(`the secret is not a valid whsec_ secret: ${(error as Error).message}`);
  }
  const url = await receiver.listen();
  // One write, so whoever reads the output sees the whole start-up block at once.
  const startup = [
    `receiver listening on ${url} (any path; Ctrl-C for a summary)`,
    newSecret
      ? `signatures are checked with a new secret; give it to POST /webhooks as "secret":\n${newSecret}`
      : options.secret
        ? values['secret-from']
          ? `signatures are checked with the secret of webhook ${values['secret-from']}`
          : 'signatures are checked with the given secret'
        : 'no --secret, --secret-from or --new-secret: signatures are NOT checked',
  ];
  if (options.failRate > 0) {
    startup.push(`failing ${Math.round(options.failRate * 100)}% of requests with 500 on purpose`);
  }
  if (options.delayMs > 0) startup.push(`answering each request after ${options.delayMs} ms`);
  console.log(startup.join('\n'));
  const stop = () => {
    for (const line of receiver.summary()) console.log(line);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  // Usage mistakes and system errors (a port in use) are one line; anything else keeps its stack.
  const message =
    error instanceof UsageError || typeof (error as { code?: unknown }).code === 'string'
      ? (error as Error).message
      : ((error as Error).stack ?? String(error));
  console.error(`[receiver] cannot start: ${message}`);
  console.error('run `npm run receiver -- --help` for the options');
  process.exit(2);
});
