import { useState } from 'preact/hooks';
import { api, query, Topic, WebhookHealth } from '../api';
import { Loaded, Panel, PublishForm, Table, Updated } from '../components';
import { duration, when } from '../format';
import { usePoll } from '../hooks';

/** A topic's webhooks summed up: what the topic list shows at a glance. */
interface TopicHealth {
  webhooks: number;
  notActive: number;
  pending: number;
  oldestPendingSeconds: number;
  dead: number;
  blocked: number;
  lastError: string | null;
}

function sumUp(rows: WebhookHealth[]): Map<number, TopicHealth> {
  const byTopic = new Map<number, TopicHealth>();
  for (const w of rows) {
    const h = byTopic.get(w.topic_id) ?? {
      webhooks: 0,
      notActive: 0,
      pending: 0,
      oldestPendingSeconds: 0,
      dead: 0,
      blocked: 0,
      lastError: null,
    };
    h.webhooks += 1;
    if (w.status !== 'active') h.notActive += 1;
    h.pending += w.pending;
    h.oldestPendingSeconds = Math.max(h.oldestPendingSeconds, w.oldest_pending_age_seconds);
    h.dead += w.dead;
    h.blocked += w.blocked_lines;
    h.lastError ??= w.last_error;
    byTopic.set(w.topic_id, h);
  }
  return byTopic;
}

/** Every topic (the first 1,000) with its webhooks' health, a form for a new one, and publishing. */
export function TopicsView() {
  // A name prefix narrows the list (GET /topics?name_prefix=…): with many topics, find by typing.
  const [prefix, setPrefix] = useState('');
  const topics = usePoll(async () => {
    const list = await api<Topic[]>(
      'GET',
      `/topics${query({ limit: 1000, name_prefix: prefix === '' ? undefined : prefix })}`,
    );
    // One request for the health of every listed topic's webhooks (the first 1,000 webhooks).
    const health =
      list.length === 0
        ? []
        : await api<WebhookHealth[]>(
            'GET',
            `/webhook-health?limit=1000&topic_ids=${list.map((t) => t.id).join(',')}`,
          );
    return { list, health: sumUp(health) };
  }, [prefix]);
  const filter = (
    <span class="panel-tools">
      <input
        aria-label="topic name starts with"
        placeholder="name starts with…"
        value={prefix}
        onInput={(e) => {
          const value = e.currentTarget.value;
          if (value === '' || /^[A-Za-z0-9._-]{1,200}$/.test(value)) setPrefix(value);
        }}
      />
      <Updated at={topics.at} />
    </span>
  );
  return (
    <>
      <Panel title="Topics" extra={filter}>
        <Loaded polled={topics} what="topics">
          {({ list, health }) =>
            list.length === 0 ? (
              <p class="muted">
                {prefix === '' ? 'No topics yet: create one below.' : 'No topic name starts so.'}
              </p>
            ) : (
              <Table>
                <thead>
                  <tr>
                    <th class="num">id</th>
                    <th>name</th>
                    <th class="num">webhooks</th>
                    <th class="num">pending</th>
                    <th>oldest pending</th>
                    <th class="num">dead</th>
                    <th class="num">blocked lines</th>
                    <th>last error</th>
                    <th>created</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((t) => {
                    const h = health.get(t.id);
                    return (
                      <tr key={t.id} data-topic={t.id}>
                        <td class="num">{t.id}</td>
                        <td>
                          <a href={`#/topics/${t.id}`}>{t.name}</a>
                        </td>
                        <td class="num">
                          {h?.webhooks ?? 0}
                          {h?.notActive ? (
                            <span class="health-trouble"> ({h.notActive} not active)</span>
                          ) : null}
                        </td>
                        <td class="num">{h?.pending ?? 0}</td>
                        <td>{h?.pending ? duration(h.oldestPendingSeconds * 1000) : '–'}</td>
                        <td class={`num${h?.dead ? ' health-trouble' : ''}`}>{h?.dead ?? 0}</td>
                        <td class={`num${h?.blocked ? ' health-trouble' : ''}`}>
                          {h?.blocked ?? 0}
                        </td>
                        <td class="error-cell">{h?.lastError ?? <span class="muted">–</span>}</td>
                        <td>{when(t.created_at)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </Table>
            )
          }
        </Loaded>
      </Panel>
      <Panel title="New topic">
        <NewTopicForm done={topics.reload} />
      </Panel>
      {topics.data && topics.data.list.length > 0 && (
        <Panel title="Publish a test message">
          <PublishForm topics={topics.data.list} />
        </Panel>
      )}
    </>
  );
}

function NewTopicForm(props: { done: () => void }) {
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const submit = async (event: Event) => {
    event.preventDefault();
    try {
      await api<Topic>('POST', '/topics', { name });
      setName('');
      setError('');
      props.done();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <form class="form" onSubmit={submit}>
      <label>
        Name
        <input
          name="name"
          value={name}
          placeholder="orders"
          required
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </label>
      <div class="form-end">
        <button type="submit" class="btn btn-primary">
          Create topic
        </button>
        {error && <span class="error-inline">{error}</span>}
      </div>
    </form>
  );
}
