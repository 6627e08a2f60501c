import { useState } from 'preact/hooks';
import { api, Topic, Webhook, WebhookHealth } from '../api';
import { Action, Badge, Loaded, Panel, PublishForm, Table, Updated } from '../components';
import { MannersDraft, MannersFields, mannersBody, mannersOf } from './webhook-manners';
import { duration } from '../format';
import { usePoll } from '../hooks';

/** A topic's webhooks at a glance (GET /webhook-health), a form for a new one, and publishing. */
export function TopicView(props: { topicId: number }) {
  const { topicId } = props;
  const topics = usePoll(() => api<Topic>('GET', `/topics/${topicId}`), [topicId]);
  const topic = topics.data;
  const rows = usePoll(
    () => api<WebhookHealth[]>('GET', `/webhook-health?limit=1000&topic_ids=${topicId}`),
    [topicId],
  );

  return (
    <>
      <p class="crumbs">
        <a href="#/">Topics</a> / {topic ? topic.name : `topic ${topicId}`}
      </p>
      <Panel
        title={`Webhooks of ${topic?.name ?? `topic ${topicId}`}`}
        extra={<Updated at={rows.at} />}
      >
        <Loaded polled={rows} what="webhooks">
          {(list) =>
            list.length === 0 ? (
              <p class="muted">No webhooks yet: add one below.</p>
            ) : (
              <Table>
                <thead>
                  <tr>
                    <th class="num">id</th>
                    <th>url</th>
                    <th>status</th>
                    <th class="num">pending</th>
                    <th>oldest pending</th>
                    <th class="num">dead</th>
                    <th class="num">blocked lines</th>
                    <th>last error</th>
                    <th>actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((row) => (
                    <WebhookTableRow key={row.id} row={row} done={rows.reload} />
                  ))}
                </tbody>
              </Table>
            )
          }
        </Loaded>
      </Panel>
      <Panel title="Add a webhook">
        <NewWebhookForm topicId={topicId} done={rows.reload} />
      </Panel>
      {topic && (
        <Panel title={`Publish a test message to ${topic.name}`}>
          <PublishForm topics={[topic]} fixedTopic={topic} done={rows.reload} />
        </Panel>
      )}
    </>
  );
}

function WebhookTableRow(props: { row: WebhookHealth; done: () => void }) {
  const w = props.row;
  const link = `#/topics/${w.topic_id}/webhooks/${w.id}`;
  return (
    <tr data-webhook={w.id}>
      <td class="num">
        <a href={link}>{w.id}</a>
      </td>
      <td class="url">
        <a href={link}>{w.url}</a>
      </td>
      <td>
        <WebhookStatus webhook={w} />
      </td>
      <td class="num" data-figure="pending">
        {w.pending}
      </td>
      <td>{w.pending ? duration(w.oldest_pending_age_seconds * 1000) : '–'}</td>
      <td class={`num${w.dead ? ' health-trouble' : ''}`} data-figure="dead">
        {w.dead}
      </td>
      <td class={`num${w.blocked_lines ? ' health-trouble' : ''}`} data-figure="blocked">
        {w.blocked_lines}
      </td>
      <td class="error-cell">
        {w.last_error ? (
          <a href={`#/deliveries/${w.last_error_delivery_id}`}>{w.last_error}</a>
        ) : (
          <span class="muted">–</span>
        )}
      </td>
      <td>
        <div class="actions">
          <PauseResume webhook={w} done={props.done} />
          <a class="btn btn-plain" href={`#/dead-letter?webhook_id=${w.id}&topic_id=${w.topic_id}`}>
            dead letters
          </a>
        </div>
      </td>
    </tr>
  );
}

/** The webhook's status (DESIGN §7), with why it was disabled on hover. */
export function WebhookStatus(props: { webhook: Pick<Webhook, 'status' | 'disabled_reason'> }) {
  const { status, disabled_reason } = props.webhook;
  return (
    <Badge value={status} title={disabled_reason ? `disabled: ${disabled_reason}` : undefined} />
  );
}

/** PATCH /webhooks/{id} {status}: pause an active webhook, resume a paused or disabled one. */
export function PauseResume(props: { webhook: Pick<Webhook, 'id' | 'status'>; done: () => void }) {
  const { webhook } = props;
  const next = webhook.status === 'active' ? 'paused' : 'active';
  return (
    <Action
      label={webhook.status === 'active' ? 'Pause' : 'Resume'}
      run={async () => {
        await api<Webhook>('PATCH', `/webhooks/${webhook.id}`, { status: next });
      }}
      done={props.done}
    />
  );
}

function NewWebhookForm(props: { topicId: number; done: () => void }) {
  const [url, setUrl] = useState('http://localhost:9000/hook');
  const [manners, setManners] = useState<MannersDraft>(mannersOf());
  const [result, setResult] = useState<{ ok: boolean; text: string; id?: number } | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    try {
      const created = await api<Webhook & { secret: string }>('POST', '/webhooks', {
        topic_id: props.topicId,
        url,
        ...mannersBody(manners, mannersOf()),
      });
      setManners(mannersOf());
      setResult({ ok: true, text: created.secret, id: created.id });
      props.done();
    } catch (e) {
      setResult({ ok: false, text: (e as Error).message });
    }
  };
  return (
    <>
      <form class="form" onSubmit={submit}>
        <label class="grow">
          URL
          <input
            name="url"
            type="url"
            value={url}
            required
            onInput={(e) => setUrl(e.currentTarget.value)}
          />
        </label>
        <MannersFields draft={manners} onChange={setManners} />
        <div class="form-end">
          <button type="submit" class="btn btn-primary">
            Add webhook
          </button>
          {result && !result.ok && <span class="error-inline">{result.text}</span>}
        </div>
      </form>
      {result?.ok && (
        <div class="created">
          <p>
            Webhook {result.id} added. Its signing secret (also at{' '}
            <code>GET /webhooks/{result.id}/secret</code>):
          </p>
          <pre>{result.text}</pre>
          <p>A receiver for a first try, checking every signature and sequence:</p>
          <pre>
            npm run receiver -- --port {new URL(url).port || 80} --secret {result.text}
          </pre>
        </div>
      )}
    </>
  );
}
