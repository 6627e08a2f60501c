import { api, Delivery, found, Message, MessageWithPayload, query, Topic } from '../api';
import { Loaded, Panel, Table } from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';
import { MessageView } from './message';

/** The message a search lands on, if it is clear which. */
function landOn(hits: Hits): number | undefined {
  if (hits.message) return hits.message.id;
  if (hits.delivery) return hits.delivery.message_id;
  return hits.byKey.length === 1 ? hits.byKey[0].id : undefined;
}

/** Topics searched for a key when none is chosen: the first ones, so a search stays a few calls. */
const TOPICS_SEARCHED = 50;

interface Hits {
  /** A message whose id is the term (the webhook-id a receiver saw). */
  message?: MessageWithPayload;
  /** A delivery whose id is the term. */
  delivery?: Delivery;
  /** Messages whose partition key or idempotency key is the term, newest first. */
  byKey: Array<Message & { topic: string; by: string }>;
}

async function search(term: string, topicId: number | undefined): Promise<Hits> {
  const id = /^[1-9][0-9]{0,15}$/.test(term) ? term : undefined;
  // One topic when given, else the first TOPICS_SEARCHED (there may be 100,000 of them).
  const topics =
    topicId === undefined
      ? await api<Topic[]>('GET', `/topics?limit=${TOPICS_SEARCHED}`)
      : [await api<Topic>('GET', `/topics/${topicId}`)];
  const keyed = /^[\x21-\x7e]{1,255}$/.test(term)
    ? topics
        .slice(0, TOPICS_SEARCHED)
        .flatMap((t) => [
          api<Message[]>(
            'GET',
            `/messages${query({ topic_id: t.id, partition_key: term, order: 'desc', limit: 20 })}`,
          ).then((list) => list.map((m) => ({ ...m, topic: t.name, by: 'partition key' }))),
          api<Message[]>(
            'GET',
            `/messages${query({ topic_id: t.id, idempotency_key: term })}`,
          ).then((list) => list.map((m) => ({ ...m, topic: t.name, by: 'idempotency key' }))),
        ])
    : [];
  const [message, delivery, ...lists] = await Promise.all([
    id ? found<MessageWithPayload>(`/messages/${id}`) : undefined,
    id ? found<Delivery>(`/deliveries/${id}`) : undefined,
    ...keyed,
  ]);
  return {
    message: message as MessageWithPayload | undefined,
    delivery: delivery as Delivery | undefined,
    byKey: (lists as Hits['byKey'][]).flat(),
  };
}

/**
 * What a support ticket carries, found: a message id (the `webhook-id` a receiver saw), a
 * delivery id, a partition key or an idempotency key. It lands on the message: the one whose id
 * it is, else the delivery's, else the only one with the key; the other hits are a link away
 * (`all` lists every hit).
 */
export function SearchView(props: { term: string; topicId?: number; all?: boolean }) {
  const { term, topicId } = props;
  const hits = usePoll(() => search(term, topicId), [term, topicId]);
  const data = hits.data;
  const landing = data && !props.all ? landOn(data) : undefined;
  if (data && landing !== undefined) {
    const others = [data.message, data.delivery, ...data.byKey].filter(Boolean).length - 1;
    const note = data.message
      ? `Message ${term}: the webhook-id a receiver saw.`
      : data.delivery
        ? `Delivery ${term} is message ${landing}'s delivery to webhook ${data.delivery.webhook_id}.`
        : `The message with ${data.byKey[0].by} ${term}.`;
    return (
      <MessageView
        messageId={landing}
        note={
          <p class="note">
            {note}{' '}
            {others > 0 && (
              <a href={`#/search${query({ q: term, topic_id: topicId, all: 1 })}`}>
                {others} other {others === 1 ? 'hit' : 'hits'} for “{term}”
              </a>
            )}
          </p>
        }
      />
    );
  }
  return (
    <Panel title={`Search: ${term}`}>
      <Loaded polled={hits} what="the search">
        {({ message, delivery, byKey }) => (
          <>
            {!message && !delivery && byKey.length === 0 && (
              <p class="muted">
                Nothing found: no message or delivery with this id
                {topicId === undefined ? '' : ' in this topic'}, no message with this partition key
                or idempotency key.
              </p>
            )}
            {message && (
              <p>
                <a href={`#/messages/${message.id}`}>Message {message.id}</a> (the webhook-id a
                receiver saw): <span class="mono">{message.partition_key}</span> #{message.sequence}
              </p>
            )}
            {delivery && (
              <p>
                <a href={`#/deliveries/${delivery.id}`}>Delivery {delivery.id}</a>: message{' '}
                <a href={`#/messages/${delivery.message_id}`}>{delivery.message_id}</a> to webhook{' '}
                {delivery.webhook_id}
              </p>
            )}
            {byKey.length > 0 && (
              <Table>
                <thead>
                  <tr>
                    <th class="num">message</th>
                    <th>topic</th>
                    <th>found by</th>
                    <th>partition key</th>
                    <th class="num">seq</th>
                    <th>idempotency key</th>
                    <th>published</th>
                  </tr>
                </thead>
                <tbody>
                  {byKey.map((m) => (
                    <tr key={`${m.by}:${m.id}`}>
                      <td class="num">
                        <a href={`#/messages/${m.id}`}>{m.id}</a>
                      </td>
                      <td>{m.topic}</td>
                      <td>{m.by}</td>
                      <td class="key">{m.partition_key}</td>
                      <td class="num">{m.sequence}</td>
                      <td class="key">{m.idempotency_key ?? '–'}</td>
                      <td>{when(m.created_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </Table>
            )}
          </>
        )}
      </Loaded>
    </Panel>
  );
}
