import { useState } from 'preact/hooks';
import { api, Webhook } from '../api';
import { Action, Panel } from '../components';
import { MannersDraft, MannersFields, mannersBody, mannersOf } from './webhook-manners';

/**
 * What PATCH /webhooks/{id} changes, one entry per setting: a new setting is one more line here
 * (a text input, or a choice of values).
 */
const SETTINGS: Array<{
  name: 'url' | 'status' | 'on_exhausted';
  label: string;
  choices?: Array<[value: string, label: string]>;
}> = [
  { name: 'url', label: 'URL' },
  {
    name: 'status',
    label: 'Status',
    choices: [
      ['active', 'active: sending'],
      ['paused', 'paused: messages wait'],
    ],
  },
  {
    name: 'on_exhausted',
    label: 'When retries run out',
    choices: [
      ['dead_letter', 'dead letter, the line goes on'],
      ['block', 'dead letter, the line stops'],
    ],
  },
];

type Draft = Record<(typeof SETTINGS)[number]['name'] | 'event_types', string>;

// event_types edited as text, entries separated by commas or spaces
const eventTypesText = (w: Webhook) => (w.event_types ?? []).join(', ');
/** The list a text stands for: null (every message) when it is empty. */
const eventTypesOf = (text: string) => {
  const entries = text.split(/[\s,]+/).filter((entry) => entry !== '');
  return entries.length === 0 ? null : entries;
};

const draftOf = (w: Webhook): Draft => ({
  url: w.url,
  status: w.status,
  on_exhausted: w.on_exhausted,
  event_types: eventTypesText(w),
});

/** Edit a webhook's settings, rotate its secret (shown once), delete it. */
export function WebhookSettings(props: { webhook: Webhook; done: () => void }) {
  const { webhook } = props;
  // Only what the user changed: the rest follows the webhook as it refreshes (a pause elsewhere).
  const [edits, setEdits] = useState<Partial<Draft>>({});
  const [secret, setSecret] = useState<string>();
  const saved = draftOf(webhook);
  const draft: Draft = { ...saved, ...edits };
  // Limits, retries and static headers, in a block of their own.
  const [manners, setManners] = useState<MannersDraft>();
  const savedManners = mannersOf(webhook);
  const changed: Record<string, unknown> = {
    ...Object.fromEntries(
      SETTINGS.filter(({ name }) => draft[name] !== saved[name]).map(({ name }) => [
        name,
        draft[name],
      ]),
    ),
    ...mannersBody(manners ?? savedManners, savedManners),
  };
  if (draft.event_types !== saved.event_types) {
    changed.event_types = eventTypesOf(draft.event_types);
  }
  return (
    <Panel title="Settings">
      <div class="form">
        {SETTINGS.map(({ name, label, choices }) => (
          <label key={name} class={choices ? undefined : 'grow'}>
            {label}
            {choices ? (
              <select
                name={name}
                value={draft[name]}
                onChange={(e) => setEdits({ ...edits, [name]: e.currentTarget.value })}
              >
                {!choices.some(([value]) => value === draft[name]) && (
                  <option value={draft[name]}>{draft[name]}</option>
                )}
                {choices.map(([value, text]) => (
                  <option key={value} value={value}>
                    {text}
                  </option>
                ))}
              </select>
            ) : (
              <input
                name={name}
                value={draft[name]}
                onInput={(e) => setEdits({ ...edits, [name]: e.currentTarget.value })}
              />
            )}
          </label>
        ))}
        <label class="grow">
          Event types (empty: every message)
          <input
            name="event_types"
            placeholder="order.*, invoice.paid"
            value={draft.event_types}
            onInput={(e) => setEdits({ ...edits, event_types: e.currentTarget.value })}
          />
        </label>
        <MannersFields
          draft={manners ?? savedManners}
          onChange={setManners}
          headerNames={webhook.header_names}
        />
        <div class="form-end">
          <Action
            label="Save"
            kind="primary"
            disabled={Object.keys(changed).length === 0}
            run={async () => {
              await api<Webhook>('PATCH', `/webhooks/${webhook.id}`, changed);
              setEdits({});
              setManners(undefined);
              return 'saved';
            }}
            done={props.done}
          />
          <Action
            label="Rotate secret"
            confirm="Rotate the signing secret? The old one keeps signing for the grace period."
            run={async () => {
              const rotated = await api<{ secret: string }>(
                'POST',
                `/webhooks/${webhook.id}/secret/rotate`,
              );
              setSecret(rotated.secret);
            }}
          />
          <Action
            label="Delete"
            kind="danger"
            confirm={`Delete webhook ${webhook.id}? Nothing more is sent to it; its deliveries go.`}
            run={async () => {
              await api<void>('DELETE', `/webhooks/${webhook.id}`);
              location.hash = `#/topics/${webhook.topic_id}`;
            }}
          />
        </div>
      </div>
      {secret && (
        <div class="secret-once">
          <p>
            The new signing secret, shown this once: give it to the receiver. The old one keeps
            signing beside it for the grace period (WEBHOOK_SECRET_GRACE_SECONDS).
          </p>
          <pre aria-label="new secret">{secret}</pre>
          <button type="button" class="btn btn-plain" onClick={() => setSecret(undefined)}>
            I have kept it
          </button>
        </div>
      )}
    </Panel>
  );
}
