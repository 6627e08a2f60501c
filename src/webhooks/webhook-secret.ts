import { randomBytes } from 'node:crypto';

/** Standard Webhooks secrets: "whsec_" + base64 of the key bytes. */
export const SECRET_PREFIX = 'whsec_';
export const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const GENERATED_SECRET_BYTES = 32;
/** Random key bytes of the shortest allowed length have about 23 different values. */
const MIN_DISTINCT_SECRET_BYTES = 16;

/** The secret shown in the OpenAPI document (the Standard Webhooks documentation's example). */
export const EXAMPLE_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
/** Secrets anyone can read in documentation: never accepted as a webhook's own. */
const PUBLISHED_SECRETS = new Set([EXAMPLE_SECRET]);

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(GENERATED_SECRET_BYTES).toString('base64');
}

/**
 * Why a secret chosen by a user is refused, or undefined: it must be "whsec_" + base64 of 24 to
 * 64 bytes that look random (not a published example, not all zeros, not a short pattern
 * repeated: at least 16 different byte values).
 */
export function secretProblem(secret: string): string | undefined {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : '';
  const key = Buffer.from(encoded, 'base64');
  if (
    !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ||
    encoded.length % 4 !== 0 ||
    key.length < MIN_SECRET_BYTES ||
    key.length > MAX_SECRET_BYTES
  ) {
    return `secret must be "${SECRET_PREFIX}" followed by base64 of ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes`;
  }
  if (PUBLISHED_SECRETS.has(secret)) {
    return 'secret is a published example: use random bytes of your own, or omit it to get one';
  }
  const distinct = new Set(key).size;
  if (distinct < MIN_DISTINCT_SECRET_BYTES) {
    return `secret is too weak (its ${key.length} bytes have only ${distinct} different values): use random bytes, or omit it to get one`;
  }
  return undefined;
}
