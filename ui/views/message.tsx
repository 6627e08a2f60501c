import { api, Attempt, Delivery, MessageWithPayload, Topic } from '../api';
import {
  Action,
  attemptsLink,
  Badge,
  LastAnswer,
  Loaded,
  Panel,
  StatusCode,
  Table,
  Updated,
} from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';

/**
 * One message (its id is the `webhook-id` a receiver saw): its payload, and its delivery to every
 * webhook with each one's attempts, and a redrive where it is dead.
 */
export function MessageView(props: { messageId: number; note?: preact.ComponentChildren }) {
  const { messageId } = props;
  const message = usePoll(async () => {
    const [m, deliveries] = await Promise.all([
      api<MessageWithPayload>('GET', `/messages/${messageId}`),
      api<Delivery[]>('GET', `/messages/${messageId}/deliveries?limit=1000`),
    ]);
    const topic = await api<Topic>('GET', `/topics/${m.topic_id}`).catch(() => undefined);
    return { m, deliveries, topic };
  }, [messageId]);
  return (
    <>
      <p class="crumbs">
        <a href="#/">Topics</a> /{' '}
        {message.data && (
          <>
            <a href={`#/topics/${message.data.m.topic_id}`}>
              {message.data.topic?.name ?? `topic ${message.data.m.topic_id}`}
            </a>{' '}
            /{' '}
          </>
        )}
        message {messageId}
      </p>
      {props.note}
      <Panel title={`Message ${messageId}`} extra={<Updated at={message.at} />}>
        <Loaded polled={message} what={`message ${messageId}`}>
          {({ m, deliveries }) => (
            <>
              <MessageFacts message={m} />
              <Payload payload={m.payload} />
              <h3 class="sub">Its delivery to every webhook</h3>
              {deliveries.length === 0 ? (
                <p class="muted">
                  No deliveries: the topic had no webhook when it was published, or they are gone.
                </p>
              ) : (
                deliveries.map((d) => (
                  <DeliveryCard key={d.id} delivery={d} done={message.reload} />
                ))
              )}
            </>
          )}
        </Loaded>
      </Panel>
    </>
  );
}

export function MessageFacts(props: { message: MessageWithPayload }) {
  const m = props.message;
  return (
    <p class="facts">
      <span>
        webhook-id <span class="mono">{m.id}</span>
      </span>
      <span>
        partition key <span class="mono">{m.partition_key}</span> #{m.sequence}
      </span>
      {m.event_type && (
        <span>
          event type <span class="mono">{m.event_type}</span>
        </span>
      )}
      {m.idempotency_key && (
        <span>
          idempotency key <span class="mono">{m.idempotency_key}</span>
        </span>
      )}
      <span>published {when(m.created_at)}</span>
    </p>
  );
}

export function Payload(props: { payload: unknown }) {
  return (
    <pre class="payload" aria-label="payload">
      {JSON.stringify(props.payload, null, 2)}
    </pre>
  );
}

/** One delivery of a message: where it stands, its attempts, and a redrive when dead. */
function DeliveryCard(props: { delivery: Delivery; done: () => void }) {
  const d = props.delivery;
  const attempts = usePoll(
    () => api<Attempt[]>('GET', `/deliveries/${d.id}/attempts?limit=1000`),
    [d.id, d.attempts, d.status],
  );
  return (
    <section class="delivery-card" data-delivery={d.id}>
      <h3>
        <a href={`#/topics/${d.topic_id}/webhooks/${d.webhook_id}`}>webhook {d.webhook_id}</a>
        <Badge value={d.status} />
        <a class="muted" href={attemptsLink(d)}>
          delivery {d.id}
        </a>
        <span class="muted">
          <LastAnswer delivery={d} />
        </span>
        {d.status === 'dead' && <RedriveOne delivery={d} done={props.done} />}
      </h3>
      <Loaded polled={attempts} what="attempts">
        {(list) => <AttemptsTable attempts={list} />}
      </Loaded>
    </section>
  );
}

/** POST /dead-letter/redrive of one dead delivery (its webhook named too, for the audit log). */
export function RedriveOne(props: { delivery: Delivery; done: () => void }) {
  const d = props.delivery;
  return (
    <Action
      label="Redrive"
      kind="primary"
      run={async () => {
        const { redriven } = await api<{ redriven: number }>('POST', '/dead-letter/redrive', {
          delivery_ids: [d.id],
          webhook_id: d.webhook_id,
        });
        return `${redriven} redriven`;
      }}
      done={props.done}
    />
  );
}

export function AttemptsTable(props: { attempts: Attempt[] }) {
  if (props.attempts.length === 0) return <p class="muted">No attempt yet.</p>;
  return (
    <Table>
      <thead>
        <tr>
          <th class="num">#</th>
          <th>started</th>
          <th class="num">status</th>
          <th class="num">duration</th>
          <th>error</th>
          <th>response (first bytes)</th>
        </tr>
      </thead>
      <tbody>
        {props.attempts.map((a) => (
          <tr key={a.id}>
            <td class="num">{a.attempt}</td>
            <td>{when(a.started_at)}</td>
            <td class="num">
              <StatusCode code={a.status_code} />
            </td>
            <td class="num">{a.duration_ms} ms</td>
            <td class="error-cell">{a.error ?? <span class="muted">–</span>}</td>
            <td>
              {a.response_body ? (
                <pre class="excerpt">{a.response_body}</pre>
              ) : (
                <span class="muted">–</span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}
