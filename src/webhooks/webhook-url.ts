export const MAX_URL_LENGTH = 2048;

/**
 * The URL rules that need no network: http(s) only, no user:password, at most 2048 characters.
 * Returns the reason a URL is refused, or undefined.
 */
export function webhookUrlProblem(raw: string): string | undefined {
  if (raw.length > MAX_URL_LENGTH) return `url must be at most ${MAX_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'url must be an absolute http or https URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return 'url must use http or https';
  }
  if (url.username || url.password) return 'url must not contain a user name or password';
  if (!url.hostname) return 'url must have a host';
  return undefined;
}
