import { useState } from 'preact/hooks';
import { api, Delivery, DeliveryStatus, Line, query, Topic, Webhook } from '../api';
import { WebhookSettings } from './webhook-settings';
import {
  Action,
  attemptsLink,
  Badge,
  LastAnswer,
  Loaded,
  Panel,
  Table,
  Updated,
  usePager,
} from '../components';
import { age, until, when } from '../format';
import { usePoll } from '../hooks';
import { PauseResume, WebhookStatus } from './topic';

const PAGE = 100;

/** One webhook: its lines (most behind first), replay, and its deliveries. */
export function WebhookView(props: { topicId: number; webhookId: number }) {
  const { topicId, webhookId } = props;
  const [topicName, setTopicName] = useState<string>();
  const webhook = usePoll(async () => {
    const [topic, list] = await Promise.all([
      api<Topic>('GET', `/topics/${topicId}`),
      api<Webhook[]>('GET', `/topics/${topicId}/webhooks?limit=1000`),
    ]);
    setTopicName(topic.name);
    return list.find((w) => w.id === webhookId) ?? null;
  }, [topicId, webhookId]);
  const w = webhook.data;
  return (
    <>
      <p class="crumbs">
        <a href="#/">Topics</a> /{' '}
        <a href={`#/topics/${topicId}`}>{topicName ?? `topic ${topicId}`}</a> / webhook {webhookId}
      </p>
      <Panel title={`Webhook ${webhookId}`} extra={<Updated at={webhook.at} />}>
        <Loaded polled={webhook} what="the webhook">
          {(found) =>
            found ? (
              <div class="facts">
                <span class="url">{found.url}</span>
                <WebhookStatus webhook={found} />
                {found.disabled_detail && <span class="error">{found.disabled_detail}</span>}
                <span class="muted">
                  event types:{' '}
                  {found.event_types ? (
                    <span class="mono">{found.event_types.join(', ')}</span>
                  ) : (
                    'every message'
                  )}
                </span>
                {found.on_exhausted && (
                  <span class="muted">
                    when retries run out:{' '}
                    {found.on_exhausted === 'block'
                      ? 'the line stops'
                      : 'dead letter, the line goes on'}
                  </span>
                )}
                <PauseResume webhook={found} done={webhook.reload} />
                <a
                  class="btn btn-plain"
                  href={`#/dead-letter?webhook_id=${webhookId}&topic_id=${topicId}`}
                >
                  dead letters
                </a>
              </div>
            ) : (
              <p class="error">
                Webhook {webhookId} is not a webhook of topic {topicId} (deleted?).
              </p>
            )
          }
        </Loaded>
      </Panel>
      {w && <WebhookSettings webhook={w} done={webhook.reload} />}
      {w && <LinesPanel webhookId={webhookId} />}
      {w && <DeliveriesPanel webhookId={webhookId} />}
      {w && <ReplayPanel webhookId={webhookId} />}
    </>
  );
}

function LinesPanel(props: { webhookId: number }) {
  const { webhookId } = props;
  const lines = usePoll(
    () => api<Line[]>('GET', `/webhooks/${webhookId}/lines?order=lag&limit=${PAGE}`),
    [webhookId],
  );
  return (
    <Panel title="Lines, most behind first" extra={<Updated at={lines.at} />}>
      <Loaded polled={lines} what="Lines">
        {(list) =>
          list.length === 0 ? (
            <p class="muted">No lines: nothing was published to this webhook yet.</p>
          ) : (
            <Table>
              <thead>
                <tr>
                  <th>partition key</th>
                  <th>state</th>
                  <th class="num">pending</th>
                  <th class="num">head</th>
                  <th class="num">tail</th>
                  <th>oldest pending</th>
                  <th>next attempt</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {list.map((line) => (
                  <tr
                    key={line.partition_key}
                    class={line.state === 'blocked' ? 'row-blocked' : undefined}
                  >
                    <td class="key">{line.partition_key}</td>
                    <td>
                      <Badge value={line.state} />
                    </td>
                    <td class="num">{line.pending}</td>
                    <td class="num">{line.head_sequence ?? '–'}</td>
                    <td class="num">{line.tail_sequence ?? '–'}</td>
                    <td>{age(line.oldest_pending_at)}</td>
                    <td>{until(line.next_attempt_at)}</td>
                    <td>
                      {line.state === 'blocked' && (
                        <Action
                          label="Skip"
                          kind="danger"
                          confirm={`Skip the dead head #${line.head_sequence} of ${line.partition_key}? It stays dead; the line moves on.`}
                          run={async () => {
                            await api<Line>(
                              'POST',
                              `/webhooks/${webhookId}/lines/${encodeURIComponent(line.partition_key)}/skip`,
                            );
                            return 'skipped: the head stays dead';
                          }}
                          done={lines.reload}
                        />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </Table>
          )
        }
      </Loaded>
    </Panel>
  );
}

/** A webhook's deliveries, newest first unless asked, by status and partition key, a page at a time. */
function DeliveriesPanel(props: { webhookId: number }) {
  const { webhookId } = props;
  const [status, setStatus] = useState<DeliveryStatus | ''>('');
  const [order, setOrder] = useState<'desc' | 'asc'>('desc');
  const [partitionKey, setPartitionKey] = useState('');
  const [typed, setTyped] = useState('');
  const pager = usePager();
  const after = pager.after;
  const deliveries = usePoll(
    () =>
      api<Delivery[]>(
        'GET',
        `/webhooks/${webhookId}/deliveries${query({
          limit: PAGE,
          status,
          order,
          partition_key: partitionKey,
          after,
        })}`,
      ),
    [webhookId, status, order, partitionKey, after],
  );
  const filter = (
    <span class="panel-tools">
      <form
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          setPartitionKey(typed.trim());
          pager.reset();
        }}
      >
        <input
          aria-label="partition key filter"
          placeholder="partition key"
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
        />
      </form>
      <label class="inline-label" for="delivery-status">
        status
      </label>
      <select
        id="delivery-status"
        value={status}
        onChange={(e) => {
          setStatus(e.currentTarget.value as DeliveryStatus | '');
          pager.reset();
        }}
      >
        <option value="">all</option>
        <option value="pending">pending</option>
        <option value="delivered">delivered</option>
        <option value="dead">dead</option>
      </select>
      <select
        aria-label="order"
        value={order}
        onChange={(e) => {
          setOrder(e.currentTarget.value as 'desc' | 'asc');
          pager.reset();
        }}
      >
        <option value="desc">newest first</option>
        <option value="asc">oldest first</option>
      </select>
      <Updated at={deliveries.at} />
    </span>
  );
  return (
    <Panel title="Deliveries" extra={filter}>
      <Loaded polled={deliveries} what="deliveries">
        {(list) => (
          <>
            {list.length === 0 ? (
              <p class="muted">
                No deliveries{status ? ` with status ${status}` : ''}
                {partitionKey ? ` of partition ${partitionKey}` : ''}
                {after ? ' past this point' : ''}.
              </p>
            ) : (
              <DeliveryTable deliveries={list} />
            )}
            {pager.controls(list, PAGE)}
          </>
        )}
      </Loaded>
    </Panel>
  );
}

export function DeliveryTable(props: { deliveries: Delivery[] }) {
  return (
    <Table>
      <thead>
        <tr>
          <th class="num">id</th>
          <th>partition key</th>
          <th class="num">seq</th>
          <th class="num" title="the sequence before it on this webhook's line">
            after
          </th>
          <th>event type</th>
          <th>status</th>
          <th class="num">attempts</th>
          <th>last answer</th>
          <th>when</th>
        </tr>
      </thead>
      <tbody>
        {props.deliveries.map((d) => (
          <tr key={d.id} data-delivery={d.id}>
            <td class="num">
              <a href={attemptsLink(d)}>{d.id}</a>
            </td>
            <td class="key">{d.partition_key}</td>
            <td class="num">{d.sequence}</td>
            <td class="num">{d.previous_sequence ?? '–'}</td>
            <td class="key">{d.event_type ?? <span class="muted">–</span>}</td>
            <td>
              <Badge value={d.status} />
            </td>
            <td class="num">
              <a href={attemptsLink(d)}>{d.attempts}</a>
            </td>
            <td class="error-cell">
              <LastAnswer delivery={d} />
            </td>
            <td>
              {d.status === 'delivered'
                ? `delivered ${when(d.delivered_at)}`
                : d.status === 'dead'
                  ? `dead ${when(d.dead_at)}`
                  : d.next_attempt_at && Date.parse(d.next_attempt_at) > Date.now()
                    ? `next try ${until(d.next_attempt_at)}`
                    : `waiting since ${when(d.created_at)}`}
            </td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}

/** POST /webhooks/{id}/replay: a partition from a sequence on, or everything since a time. */
function ReplayPanel(props: { webhookId: number }) {
  const [partitionKey, setPartitionKey] = useState('');
  const [fromSequence, setFromSequence] = useState('1');
  const [since, setSince] = useState('');
  const body = partitionKey
    ? { partition_key: partitionKey, from_sequence: Number(fromSequence) }
    : since
      ? { since: new Date(since).toISOString() }
      : null;
  return (
    <Panel title="Replay">
      <p class="muted">
        Sends the messages again, in order, before anything newer in their lines. Give a partition
        key and a sequence, or a time for every partition.
      </p>
      <div class="form">
        <label>
          Partition key
          <input value={partitionKey} onInput={(e) => setPartitionKey(e.currentTarget.value)} />
        </label>
        <label>
          From sequence
          <input
            type="number"
            min={1}
            value={fromSequence}
            disabled={!partitionKey}
            onInput={(e) => setFromSequence(e.currentTarget.value)}
          />
        </label>
        <label>
          or every partition since
          <input
            type="datetime-local"
            value={since}
            disabled={!!partitionKey}
            onInput={(e) => setSince(e.currentTarget.value)}
          />
        </label>
        <div class="form-end">
          <Action
            label="Replay"
            kind="primary"
            disabled={!body}
            run={async () => {
              const { replayed } = await api<{ replayed: number }>(
                'POST',
                `/webhooks/${props.webhookId}/replay`,
                body,
              );
              return `${replayed} to send again`;
            }}
          />
        </div>
      </div>
    </Panel>
  );
}
