/** The API's JSON, as DESIGN §5 and §7 name the fields. */
export interface Topic {
  id: number;
  name: string;
  created_at: string;
}

export type WebhookStatus = 'active' | 'paused' | 'disabled';

export interface Webhook {
  id: number;
  topic_id: number;
  url: string;
  created_at: string;
  status: WebhookStatus;
  disabled_reason: string | null;
  disabled_detail: string | null;
  on_exhausted: 'dead_letter' | 'block';
  // The webhook's own settings (null = the global setting)
  header_names: string[];
  max_in_flight: number | null;
  rate_limit_per_second: number | null;
  max_retries: number | null;
  backoff_factor: number | null;
  /** Exact types and prefix.* entries; null = every message. */
  event_types: string[] | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

export interface Delivery {
  id: number;
  message_id: number;
  webhook_id: number;
  topic_id: number;
  partition_key: string;
  sequence: number;
  /** The sequence before it on the webhook's line (null for the first). */
  previous_sequence: number | null;
  event_type: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  dead_at: string | null;
}

export interface Attempt {
  id: number;
  delivery_id: number;
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
}

/** §7: one per (webhook, partition). */
export interface Line {
  partition_key: string;
  head_sequence: number | null;
  tail_sequence: number | null;
  pending: number;
  oldest_pending_at: string | null;
  next_attempt_at: string | null;
  state: 'idle' | 'due' | 'in_flight' | 'retrying' | 'blocked' | 'paused';
}

export interface PublishedMessage {
  id: number;
  partition_key: string;
  sequence: number;
}

export interface Message {
  id: number;
  topic_id: number;
  partition_key: string;
  sequence: number;
  created_at: string;
  idempotency_key: string | null;
  event_type: string | null;
}

export interface MessageWithPayload extends Message {
  payload: unknown;
}

/** GET /webhook-health: one webhook at a glance. */
export interface WebhookHealth {
  id: number;
  topic_id: number;
  topic: string;
  url: string;
  status: WebhookStatus;
  disabled_reason: string | null;
  on_exhausted: 'dead_letter' | 'block';
  pending: number;
  oldest_pending_age_seconds: number;
  dead: number;
  blocked_lines: number;
  last_error: string | null;
  last_status_code: number | null;
  last_error_delivery_id: number | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  parameters: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** 401: the API wants a key (API_KEYS). */
export class NeedsKey extends ApiError {}

const KEY_STORAGE = 'pgwq.apiKey';

/** The API key, kept for this tab only. */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (key: string | null) =>
    key ? sessionStorage.setItem(KEY_STORAGE, key) : sessionStorage.removeItem(KEY_STORAGE),
};

let onNeedsKey: () => void = () => undefined;
/** The app shows its key form when any request answers 401. */
export function whenKeyNeeded(listener: () => void): void {
  onNeedsKey = listener;
}

/**
 * One API request. The UI lives at <api>/ui/, so paths resolve against the folder above it and
 * the UI works behind a proxy that mounts the API under a prefix. Every state-changing request
 * sends JSON (a non-simple request, which browsers never send cross-site without CORS).
 */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = apiKey.get();
  if (key) headers.authorization = `Bearer ${key}`;
  const init: RequestInit = { method, headers };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(new URL(`..${path}`, document.baseURI), init);
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => null)) as { message?: unknown } | null;
  if (response.ok) return data as T;
  const message =
    typeof data?.message === 'string' ? data.message : `${response.status} ${response.statusText}`;
  if (response.status === 401) {
    onNeedsKey();
    throw new NeedsKey(401, message);
  }
  throw new ApiError(response.status, message);
}

/** The answer, or undefined when it is a 404 (a search that found nothing there). */
export async function found<T>(path: string): Promise<T | undefined> {
  try {
    return await api<T>('GET', path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return undefined;
    throw error;
  }
}

/** A query string from the set values, e.g. `?status=dead&after=10`. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
