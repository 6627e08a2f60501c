import { useState } from 'preact/hooks';
import { api, Delivery, Topic, Webhook } from '../api';
import { Action, Badge, Loaded, Panel, PublishForm, Table, Updated } from '../components';
import { age } from '../format';
import { usePoll } from '../hooks';

/** The most pending deliveries counted per webhook (one page of the deliveries list). */
const PENDING_CAP = 1000;

interface WebhookRow {
  webhook: Webhook;
  pending: number;
  oldestPendingAt: string | null;
}

/** A topic's webhooks with what they have waiting, a form for a new one, and publishing. */
export function TopicView(props: { topicId: number }) {
  const { topicId } = props;
  const topics = usePoll(() => api<Topic[]>('GET', '/topics?limit=1000'), []);
  const topic = topics.data?.find((t) => t.id === topicId);
  const rows = usePoll(async (): Promise<WebhookRow[]> => {
    const webhooks = await api<Webhook[]>('GET', `/topics/${topicId}/webhooks?limit=1000`);
    return Promise.all(
      webhooks.map(async (webhook) => {
        // Pending deliveries come in id order, so the first is the oldest.
        const pending = await api<Delivery[]>(
          'GET',
          `/webhooks/${webhook.id}/deliveries?status=pending&limit=${PENDING_CAP}`,
        );
        return {
          webhook,
          pending: pending.length,
          oldestPendingAt: pending[0]?.created_at ?? null,
        };
      }),
    );
  }, [topicId]);

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
                    <th>actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((row) => (
                    <WebhookTableRow key={row.webhook.id} row={row} done={rows.reload} />
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

function WebhookTableRow(props: { row: WebhookRow; done: () => void }) {
  const { webhook, pending, oldestPendingAt } = props.row;
  const link = `#/topics/${webhook.topic_id}/webhooks/${webhook.id}`;
  return (
    <tr data-webhook={webhook.id}>
      <td class="num">
        <a href={link}>{webhook.id}</a>
      </td>
      <td class="url">
        <a href={link}>{webhook.url}</a>
      </td>
      <td>
        <WebhookStatus webhook={webhook} />
      </td>
      <td class="num">{pending >= PENDING_CAP ? `${PENDING_CAP}+` : pending}</td>
      <td>{age(oldestPendingAt)}</td>
      <td>
        <div class="actions">
          <PauseResume webhook={webhook} done={props.done} />
          <a
            class="btn btn-plain"
            href={`#/dead-letter?webhook_id=${webhook.id}&topic_id=${webhook.topic_id}`}
          >
            dead letters
          </a>
        </div>
      </td>
    </tr>
  );
}

/** The webhook's status (DESIGN §7), with why it was disabled on hover. */
export function WebhookStatus(props: { webhook: Webhook }) {
  const { status, disabled_reason } = props.webhook;
  return (
    <Badge value={status} title={disabled_reason ? `disabled: ${disabled_reason}` : undefined} />
  );
}

/** PATCH /webhooks/{id} {status}: pause an active webhook, resume a paused or disabled one. */
export function PauseResume(props: { webhook: Webhook; done: () => void }) {
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
  const [result, setResult] = useState<{ ok: boolean; text: string; id?: number } | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    try {
      const created = await api<Webhook & { secret: string }>('POST', '/webhooks', {
        topic_id: props.topicId,
        url,
      });
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
