import { api, Attempt } from '../api';
import { Loaded, Panel, StatusCode, Table, Updated } from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';

/** Every attempt of one delivery: what the receiver answered, how long it took, what failed. */
export function AttemptsView(props: { deliveryId: number; where: URLSearchParams }) {
  const { deliveryId, where } = props;
  const webhookId = where.get('webhook_id');
  const attempts = usePoll(
    () => api<Attempt[]>('GET', `/deliveries/${deliveryId}/attempts?limit=1000`),
    [deliveryId],
  );
  return (
    <>
      <p class="crumbs">
        <button type="button" class="link" onClick={() => history.back()}>
          ← back
        </button>
      </p>
      <Panel title={`Attempts of delivery ${deliveryId}`} extra={<Updated at={attempts.at} />}>
        {webhookId && (
          <p class="facts">
            <span>
              message <span class="mono">{where.get('partition_key')}</span> #
              {where.get('sequence')} to{' '}
              <a href={`#/topics/${where.get('topic_id')}/webhooks/${webhookId}`}>
                webhook {webhookId}
              </a>
            </span>
          </p>
        )}
        <Loaded polled={attempts} what="attempts">
          {(list) =>
            list.length === 0 ? (
              <p class="muted">No attempt yet.</p>
            ) : (
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
                  {list.map((a) => (
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
            )
          }
        </Loaded>
      </Panel>
    </>
  );
}
