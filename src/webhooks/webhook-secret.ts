import { randomBytes } from 'node:crypto';

/** Standard Webhooks secrets: "whsec_" + base64 of the key bytes. */
export const SECRET_PREFIX = 'whsec_';
export const MIN_SECRET_BYTES = 24;
const GENERATED_SECRET_BYTES = 32;

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(GENERATED_SECRET_BYTES).toString('base64');
}

/** The key bytes of a whsec_ secret, or undefined when it is not one of at least 24 bytes. */
export function secretKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return undefined;
  const key = Buffer.from(encoded, 'base64');
  return key.length >= MIN_SECRET_BYTES && key.length <= 64 ? key : undefined;
}
