import { useState } from 'preact/hooks';
import { api, Delivery, query, Topic, Webhook } from '../api';
import {
  Action,
  attemptsLink,
  LastAnswer,
  Loaded,
  Panel,
  Table,
  Updated,
  usePager,
} from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';
import { TopicPicker } from '../topic-picker';

const PAGE = 100;

export interface DeadLetterFilter {
  topicId?: number;
  webhookId?: number;
}

/** Dead deliveries, filtered by topic and webhook, with redrive (DESIGN §7). */
export function DeadLetterView(props: { filter: DeadLetterFilter }) {
  const { topicId, webhookId } = props.filter;
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const pager = usePager();
  const filterQuery = { topic_id: topicId, webhook_id: webhookId };
  const webhooks = usePoll(
    async () => (topicId ? api<Webhook[]>('GET', `/topics/${topicId}/webhooks?limit=1000`) : []),
    [topicId],
  );
  const page = usePoll(async () => {
    const [count, list] = await Promise.all([
      api<{ count: number }>('GET', `/dead-letter/count${query(filterQuery)}`),
      api<Delivery[]>(
        'GET',
        `/dead-letter${query({ ...filterQuery, limit: PAGE, after: pager.after })}`,
      ),
    ]);
    // The names of this page's topics, one lookup each (there may be 100,000 topics).
    const ids = [...new Set(list.map((d) => d.topic_id))];
    const names = new Map(
      await Promise.all(
        ids.map(async (id) => [id, (await api<Topic>('GET', `/topics/${id}`)).name] as const),
      ),
    );
    return { count: count.count, list, names };
  }, [topicId, webhookId, pager.after]);
  const topicName = (id: number) => page.data?.names.get(id) ?? String(id);

  const go = (next: DeadLetterFilter) => {
    setSelected(new Set());
    pager.reset();
    location.hash = `#/dead-letter${query({ topic_id: next.topicId, webhook_id: next.webhookId })}`;
  };
  const toggle = (id: number) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const redrive = async (body: object) => {
    const { redriven } = await api<{ redriven: number }>('POST', '/dead-letter/redrive', body);
    setSelected(new Set());
    return `${redriven} redriven`;
  };
  const filtered = topicId !== undefined || webhookId !== undefined;

  const tools = (
    <span class="panel-tools">
      <TopicPicker
        topicId={topicId}
        placeholder="every topic"
        onPick={(t) => go({ topicId: t?.id })}
      />
      <select
        aria-label="webhook"
        value={webhookId ?? ''}
        disabled={!topicId}
        onChange={(e) => go({ topicId, webhookId: Number(e.currentTarget.value) || undefined })}
      >
        <option value="">every webhook</option>
        {webhooks.data?.map((w) => (
          <option key={w.id} value={w.id}>
            {w.id}: {w.url}
          </option>
        ))}
      </select>
      <Updated at={page.at} />
    </span>
  );

  return (
    <Panel title="Dead letters" extra={tools}>
      <Loaded polled={page} what="dead letters">
        {({ count, list }) => (
          <>
            <div class="bar">
              <span>
                <strong>{count}</strong> dead{filtered ? ' matching the filter' : ''}
              </span>
              <Action
                label={`Redrive selected (${selected.size})`}
                kind="primary"
                disabled={selected.size === 0}
                run={() => redrive({ delivery_ids: [...selected] })}
                done={page.reload}
              />
              {filtered && (
                <Action
                  label={`Redrive all ${count}`}
                  confirm={`Send all ${count} dead deliveries matching the filter again?`}
                  disabled={count === 0}
                  run={() => redrive(filterQuery)}
                  done={page.reload}
                />
              )}
            </div>
            {list.length === 0 ? (
              <p class="muted">Nothing dead{filtered ? ' here' : ''}.</p>
            ) : (
              <Table>
                <thead>
                  <tr>
                    <th>
                      <input
                        type="checkbox"
                        aria-label="select all on this page"
                        checked={list.every((d) => selected.has(d.id))}
                        onChange={(e) =>
                          setSelected(
                            e.currentTarget.checked ? new Set(list.map((d) => d.id)) : new Set(),
                          )
                        }
                      />
                    </th>
                    <th class="num">id</th>
                    <th>topic</th>
                    <th class="num">webhook</th>
                    <th>partition key</th>
                    <th class="num">seq</th>
                    <th class="num">attempts</th>
                    <th>last answer</th>
                    <th>dead since</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((d) => (
                    <tr key={d.id} data-delivery={d.id}>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`select delivery ${d.id}`}
                          checked={selected.has(d.id)}
                          onChange={() => toggle(d.id)}
                        />
                      </td>
                      <td class="num">
                        <a href={attemptsLink(d)}>{d.id}</a>
                      </td>
                      <td>{topicName(d.topic_id)}</td>
                      <td class="num">
                        <a href={`#/topics/${d.topic_id}/webhooks/${d.webhook_id}`}>
                          {d.webhook_id}
                        </a>
                      </td>
                      <td class="key">{d.partition_key}</td>
                      <td class="num">{d.sequence}</td>
                      <td class="num">
                        <a href={attemptsLink(d)}>{d.attempts}</a>
                      </td>
                      <td class="error-cell">
                        <LastAnswer delivery={d} />
                      </td>
                      <td>{when(d.dead_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </Table>
            )}
            {pager.controls(list, PAGE)}
          </>
        )}
      </Loaded>
    </Panel>
  );
}
