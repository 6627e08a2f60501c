import { createHmac } from 'node:crypto';

/** Standard Webhooks secrets carry this prefix before the base64 key. */
const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a "whsec_<base64>" secret. */
export function signingKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, 'base64');
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
  const signed = `${messageId}.${timestampSeconds}.${body}`;
  return secrets
    .map(
      (secret) => 'v1,' + createHmac('sha256', signingKey(secret)).update(signed).digest('base64'),
    )
    .join(' ');
}
