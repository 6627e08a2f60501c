import { useState } from 'preact/hooks';
import { api, Topic } from '../api';
import { Loaded, Panel, PublishForm, Table, Updated } from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';

/** Every topic (the first 1,000), a form for a new one, and publishing. */
export function TopicsView() {
  const topics = usePoll(() => api<Topic[]>('GET', '/topics?limit=1000'), []);
  return (
    <>
      <Panel title="Topics" extra={<Updated at={topics.at} />}>
        <Loaded polled={topics} what="topics">
          {(list) =>
            list.length === 0 ? (
              <p class="muted">No topics yet: create one below.</p>
            ) : (
              <Table>
                <thead>
                  <tr>
                    <th class="num">id</th>
                    <th>name</th>
                    <th>created</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((t) => (
                    <tr key={t.id}>
                      <td class="num">{t.id}</td>
                      <td>
                        <a href={`#/topics/${t.id}`}>{t.name}</a>
                      </td>
                      <td>{when(t.created_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </Table>
            )
          }
        </Loaded>
      </Panel>
      <Panel title="New topic">
        <NewTopicForm done={topics.reload} />
      </Panel>
      {topics.data && topics.data.length > 0 && (
        <Panel title="Publish a test message">
          <PublishForm topics={topics.data} />
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
