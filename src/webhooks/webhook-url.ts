export const MAX_URL_LENGTH = 2048;

/** C0 controls and space, DEL and C1 controls, no-break space, line/paragraph separators. */
function isSpaceOrControl(char: string): boolean {
  const code = char.codePointAt(0)!;
  return code <= 0x20 || (code >= 0x7f && code <= 0xa0) || code === 0x2028 || code === 0x2029;
}

/**
 * The URL rules that need no network: http(s) only, no user:password, at most 2048 characters.
 * Returns the reason a URL is refused, or undefined.
 */
export function webhookUrlProblem(raw: string): string | undefined {
  if (raw.length > MAX_URL_LENGTH) return `url must be at most ${MAX_URL_LENGTH} characters`;
  // The URL is stored as given and parsed again by the worker: refuse what the parser would
  // silently strip or that PostgreSQL text cannot hold (NUL), so both see the same URL.
  if ([...raw].some(isSpaceOrControl)) {
    return 'url must not contain spaces or control characters';
  }
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
