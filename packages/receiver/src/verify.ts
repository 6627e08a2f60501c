import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a verified request carries: one message of one partition, as the queue sent it. */
export interface Delivery {
  /** webhook-id: the message's id, the same on every attempt. */
  id: string;
  /** webhook-timestamp, in seconds. */
  timestamp: number;
  topic: string;
  partitionKey: string;
  /** The message's place in its partition: 1, 2, 3, … */
  sequence: number;
  /**
   * webhook-previous-sequence: the sequence of the message that came before this one on your
   * endpoint's line, whatever became of it (delivered or dead-lettered); null for the line's
   * first. With event_types filters the numbers your endpoint gets are not consecutive: this is
   * how you tell "nothing missing" from a gap. undefined only when the sender did not send the
   * header (older senders: then the one before is sequence − 1).
   */
  previousSequence: number | null | undefined;
  /** webhook-event-type: the message's event type (order.created), null when it has none. */
  eventType: string | null;
  /** webhook-attempt: 1 on the first try. */
  attempt: number;
  /** The body, parsed. */
  payload: unknown;
  /** The body exactly as received. */
  body: string;
}

/** Anything with headers and the raw body: a Node request with its body read, a Fetch request's parts. */
export interface WebhookRequest {
  headers: Record<string, string | string[] | undefined> | Headers;
  body: string | Buffer | Uint8Array;
}

export interface VerifyOptions {
  /** How far webhook-timestamp may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The clock, in milliseconds (tests). */
  now?: () => number;
}

/** Why a request was refused; answer it 401. */
export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
}

const SIGNED_HEADERS = [
  'webhook-id',
  'webhook-timestamp',
  'webhook-topic',
  'webhook-partition-key',
  'webhook-sequence',
  'webhook-previous-sequence',
  'webhook-event-type',
] as const;

/**
 * Checks both signatures of a delivery and returns it. `secret` is the webhook's `whsec_…`
 * secret, or several while you rotate it (any one verifying is enough; the sender signs with the
 * new and the old secret during the grace period). Throws WebhookVerificationError when:
 * a header is missing, the timestamp is outside the tolerance (a replay), `webhook-signature`
 * does not match id.timestamp.body, or `webhook-metadata-signature` does not match the ordering
 * headers (a sequence that was changed in transit).
 */
export function verify(
  request: WebhookRequest,
  secret: string | readonly string[],
  options: VerifyOptions = {},
): Delivery {
  const header = headerReader(request.headers);
  const body =
    typeof request.body === 'string' ? request.body : Buffer.from(request.body).toString('utf8');
  const id = required(header, 'webhook-id');
  const timestampText = required(header, 'webhook-timestamp');
  const timestamp = Number(timestampText);
  if (!/^\d{1,12}$/.test(timestampText)) fail('webhook-timestamp is not a number of seconds');
  const now = (options.now ?? Date.now)() / 1000;
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - timestamp) > tolerance) {
    fail(`webhook-timestamp is more than ${tolerance} s from now (a replay, or a wrong clock)`);
  }
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) fail('no secret to verify with');
  const keys = secrets.map(signingKey);
  if (!anySignatureMatches(keys, `${id}.${timestampText}.${body}`, header('webhook-signature'))) {
    fail('webhook-signature does not match the body');
  }
  const metadata = SIGNED_HEADERS.map((name) => header(name) ?? '').join('\n');
  if (!anySignatureMatches(keys, metadata, header('webhook-metadata-signature'))) {
    fail('webhook-metadata-signature does not match the ordering headers');
  }

  const sequence = positive(required(header, 'webhook-sequence'), 'webhook-sequence');
  const previousText = header('webhook-previous-sequence');
  const previousSequence =
    previousText === undefined
      ? undefined
      : previousText === ''
        ? null
        : positive(previousText, 'webhook-previous-sequence');
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    fail('the body is not JSON');
  }
  return {
    id,
    timestamp,
    topic: required(header, 'webhook-topic'),
    partitionKey: required(header, 'webhook-partition-key'),
    sequence,
    previousSequence,
    eventType: header('webhook-event-type') || null,
    attempt: Number(header('webhook-attempt') ?? '1') || 1,
    payload,
    body,
  };
}

function fail(reason: string): never {
  throw new WebhookVerificationError(reason);
}

type HeaderReader = (name: string) => string | undefined;

function headerReader(headers: WebhookRequest['headers']): HeaderReader {
  if (typeof (headers as Headers).get === 'function') {
    return (name) => (headers as Headers).get(name) ?? undefined;
  }
  const plain = headers as Record<string, string | string[] | undefined>;
  const lower = new Map(Object.entries(plain).map(([k, v]) => [k.toLowerCase(), v]));
  return (name) => {
    const value = lower.get(name);
    return Array.isArray(value) ? value.join(', ') : value;
  };
}

function required(header: HeaderReader, name: string): string {
  const value = header(name);
  if (value === undefined || value === '') fail(`${name} is missing`);
  return value;
}

function positive(text: string, name: string): number {
  const value = Number(text);
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    fail(`${name} is not a positive integer`);
  }
  return value;
}

/** The HMAC key of a `whsec_<base64>` secret. */
function signingKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

/** Whether any `v1,<base64>` of the space-separated header is content's HMAC with any key. */
function anySignatureMatches(keys: Buffer[], content: string, header: string | undefined): boolean {
  if (!header) return false;
  const expected = keys.map((key) => createHmac('sha256', key).update(content).digest());
  return header.split(' ').some((candidate) => {
    if (!candidate.startsWith('v1,')) return false;
    const given = Buffer.from(candidate.slice(3), 'base64');
    return expected.some((e) => e.length === given.length && timingSafeEqual(e, given));
  });
}
