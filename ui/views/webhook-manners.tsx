import type { Webhook } from '../api';

/**
 * A webhook's own manners (its limits, retries and static headers), for the create and the edit
 * form alike. Empty number fields mean the global setting. Header values are write-only: an
 * existing webhook shows its header names; "Replace headers" starts a new set (names kept, values
 * to fill in), which replaces the whole set on save.
 */

export const LIMIT_FIELDS = [
  { name: 'max_in_flight', label: 'Max in flight', hint: 'all workers', step: '1' },
  { name: 'rate_limit_per_second', label: 'Rate limit / s', hint: 'all workers', step: 'any' },
  { name: 'max_retries', label: 'Max retries', hint: 'MAX_RETRIES', step: '1' },
  { name: 'backoff_factor', label: 'Backoff factor', hint: 'BACKOFF_FACTOR', step: 'any' },
] as const;

type LimitName = (typeof LIMIT_FIELDS)[number]['name'];

export interface MannersDraft {
  limits: Record<LimitName, string>;
  /** A new header set being written (replaces the old one on save); undefined: unchanged. */
  headers?: Array<[name: string, value: string]>;
}

export const mannersOf = (w?: Webhook): MannersDraft => ({
  limits: Object.fromEntries(
    LIMIT_FIELDS.map(({ name }) => [name, w?.[name] == null ? '' : String(w[name])]),
  ) as Record<LimitName, string>,
});

/** The request fields that differ from `saved` (all that are set, for a new webhook). */
export function mannersBody(draft: MannersDraft, saved: MannersDraft): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const { name } of LIMIT_FIELDS) {
    const value = draft.limits[name].trim();
    if (value !== saved.limits[name]) body[name] = value === '' ? null : Number(value);
  }
  if (draft.headers) {
    const rows = draft.headers.filter(([name]) => name.trim() !== '');
    body.headers = rows.length ? Object.fromEntries(rows.map(([n, v]) => [n.trim(), v])) : null;
  }
  return body;
}

export function MannersFields(props: {
  draft: MannersDraft;
  onChange: (draft: MannersDraft) => void;
  /** The header names the webhook has now (an existing webhook). */
  headerNames?: string[];
}) {
  const { draft, onChange } = props;
  const rows = draft.headers;
  const setRow = (k: number, row: [string, string]) =>
    onChange({ ...draft, headers: rows!.map((r, j) => (j === k ? row : r)) });
  return (
    <fieldset class="manners">
      <legend>This endpoint's manners (empty: the global setting)</legend>
      {LIMIT_FIELDS.map(({ name, label, hint, step }) => (
        <label key={name}>
          {label}
          <input
            name={name}
            type="number"
            min="0"
            step={step}
            placeholder={hint}
            value={draft.limits[name]}
            onInput={(e) =>
              onChange({ ...draft, limits: { ...draft.limits, [name]: e.currentTarget.value } })
            }
          />
        </label>
      ))}
      <div class="grow headers">
        Static headers
        {rows === undefined ? (
          <span>
            {props.headerNames?.length ? (
              <span aria-label="header names">
                {props.headerNames.map((n) => (
                  <code key={n}>{n}: ••••</code>
                ))}
              </span>
            ) : (
              <span class="muted"> none </span>
            )}
            <button
              type="button"
              class="btn btn-plain"
              onClick={() =>
                onChange({
                  ...draft,
                  headers: (props.headerNames ?? []).map((n) => [n, ''] as [string, string]),
                })
              }
            >
              {props.headerNames?.length ? 'Replace headers' : 'Add headers'}
            </button>
          </span>
        ) : (
          <>
            {rows.map(([name, value], k) => (
              <span key={k} class="header-row">
                <input
                  aria-label="header name"
                  placeholder="Authorization"
                  value={name}
                  onInput={(e) => setRow(k, [e.currentTarget.value, value])}
                />
                <input
                  aria-label="header value"
                  type="password"
                  placeholder="value (write-only)"
                  value={value}
                  required={name.trim() !== ''}
                  onInput={(e) => setRow(k, [name, e.currentTarget.value])}
                />
              </span>
            ))}
            {rows.length < 20 && (
              <button
                type="button"
                class="btn btn-plain"
                onClick={() => onChange({ ...draft, headers: [...rows, ['', '']] })}
              >
                + header
              </button>
            )}
            <span class="muted">
              {rows.length ? 'Saving replaces all headers.' : 'Saving removes all headers.'}
            </span>
          </>
        )}
      </div>
    </fieldset>
  );
}
