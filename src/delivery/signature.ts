import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import { remembered } from '../common/remembered.js';

/** Standard Webhooks secrets carry this prefix before the base64 key. */
const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a "whsec_<base64>" secret. */
export function signingKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, 'base64');
}

/** The HMAC key of each secret seen lately: every delivery signs twice with the same key. */
const keyOf = remembered((secret) => createSecretKey(signingKey(secret)));

/** `v1,<base64 HMAC-SHA256 of content>` per secret, space-separated. */
function sign(secrets: readonly string[], content: string): string {
  let header = '';
  for (const secret of secrets) {
    const signature = createHmac('sha256', keyOf(secret)).update(content).digest('base64');
    header += (header ? ' v1,' : 'v1,') + signature;
  }
  return header;
}

/**
 * The webhook-signature header of the Standard Webhooks scheme: `v1,<base64 HMAC-SHA256 of
 * "<id>.<timestamp>.<body>">`, one per secret, space-separated (during a rotation the receiver
 * accepts the message when any one of them verifies).
 */
export function signatureHeader(
  secrets: readonly string[],
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  return sign(secrets, `${messageId}.${timestampSeconds}.${body}`);
}

/**
 * The header values the metadata signature covers, exactly as sent (an absent header is ""):
 * the Standard Webhooks signature covers only id, timestamp and body, and a replayed delivery
 * with a forged webhook-sequence would otherwise pass as a real one (a false gap).
 */
export interface DeliveryMetadata {
  id: string;
  timestamp: string;
  topic: string;
  partitionKey: string;
  sequence: string;
  previousSequence: string;
  eventType: string;
}

/**
 * What webhook-metadata-signature signs: the values of webhook-id, webhook-timestamp,
 * webhook-topic, webhook-partition-key, webhook-sequence, webhook-previous-sequence and
 * webhook-event-type, in this order, joined by "\n" (no header value can hold a newline).
 */
export function metadataSignedContent(m: DeliveryMetadata): string {
  return `${m.id}\n${m.timestamp}\n${m.topic}\n${m.partitionKey}\n${m.sequence}\n${m.previousSequence}\n${m.eventType}`;
}

/** The webhook-metadata-signature header: the Standard Webhooks scheme over the metadata. */
export function metadataSignatureHeader(
  secrets: readonly string[],
  metadata: DeliveryMetadata,
): string {
  return sign(secrets, metadataSignedContent(metadata));
}

/** Whether any `v1,` signature of `header` is the metadata's, signed with `secret`. */
export function verifyMetadataSignature(
  secret: string,
  metadata: DeliveryMetadata,
  header: string,
): boolean {
  const expected = Buffer.from(metadataSignatureHeader([secret], metadata));
  return header.split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
