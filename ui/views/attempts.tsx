import { api, Attempt, Delivery, MessageWithPayload } from '../api';
import { Badge, LastAnswer, Loaded, Panel, Updated } from '../components';
import { usePoll } from '../hooks';
import { AttemptsTable, MessageFacts, Payload, RedriveOne } from './message';

/**
 * One delivery: its message (payload, key), its webhook, every attempt (what the receiver
 * answered, how long it took, what failed), and a redrive when it is dead.
 */
export function AttemptsView(props: { deliveryId: number }) {
  const { deliveryId } = props;
  const loaded = usePoll(async () => {
    const [delivery, attempts] = await Promise.all([
      api<Delivery>('GET', `/deliveries/${deliveryId}`),
      api<Attempt[]>('GET', `/deliveries/${deliveryId}/attempts?limit=1000`),
    ]);
    const message = await api<MessageWithPayload>('GET', `/messages/${delivery.message_id}`);
    return { delivery, attempts, message };
  }, [deliveryId]);
  return (
    <>
      <p class="crumbs">
        <button type="button" class="link" onClick={() => history.back()}>
          ← back
        </button>
      </p>
      <Panel title={`Attempts of delivery ${deliveryId}`} extra={<Updated at={loaded.at} />}>
        <Loaded polled={loaded} what="the delivery">
          {({ delivery: d, attempts, message }) => (
            <>
              <p class="facts">
                <span>
                  to{' '}
                  <a href={`#/topics/${d.topic_id}/webhooks/${d.webhook_id}`}>
                    webhook {d.webhook_id}
                  </a>
                </span>
                <Badge value={d.status} />
                <span>
                  <LastAnswer delivery={d} />
                </span>
                <a href={`#/messages/${d.message_id}`}>message {d.message_id} to every webhook</a>
                {d.status === 'dead' && <RedriveOne delivery={d} done={loaded.reload} />}
              </p>
              <MessageFacts message={message} />
              <Payload payload={message.payload} />
              <AttemptsTable attempts={attempts} />
            </>
          )}
        </Loaded>
      </Panel>
    </>
  );
}
