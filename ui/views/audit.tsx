import { useState } from 'preact/hooks';
import { api, AuditEntry, query } from '../api';
import { Loaded, Panel, Table, Updated, usePager } from '../components';
import { when } from '../format';
import { usePoll } from '../hooks';

const PAGE = 100;

/** GET /audit-log: who did what, newest first, filtered by target. */
export function AuditView(props: { target?: string }) {
  const [target, setTarget] = useState(props.target ?? '');
  const pager = usePager();
  const entries = usePoll(
    () =>
      api<AuditEntry[]>(
        'GET',
        `/audit-log${query({ target: props.target, limit: PAGE, after: pager.after })}`,
      ),
    [props.target, pager.after],
  );
  const tools = (
    <span class="panel-tools">
      <form
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          pager.reset();
          location.hash = `#/audit-log${query({ target: target.trim() })}`;
        }}
      >
        <input
          aria-label="target"
          placeholder="target, e.g. webhook:3"
          value={target}
          onInput={(e) => setTarget(e.currentTarget.value)}
        />
        <button type="submit" class="btn btn-plain">
          Filter
        </button>
      </form>
      <Updated at={entries.at} />
    </span>
  );
  return (
    <Panel title="Audit log, newest first" extra={tools}>
      <Loaded polled={entries} what="the audit log">
        {(list) => (
          <>
            {list.length === 0 ? (
              <p class="muted">
                No operator action{props.target ? ` on ${props.target}` : ''} yet.
              </p>
            ) : (
              <Table>
                <thead>
                  <tr>
                    <th>when</th>
                    <th>who</th>
                    <th>action</th>
                    <th>target</th>
                    <th>parameters</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((e) => (
                    <tr key={e.id} data-audit={e.id}>
                      <td>{when(e.at)}</td>
                      <td>{e.actor}</td>
                      <td class="mono">{e.action}</td>
                      <td>
                        <a href={`#/audit-log${query({ target: e.target })}`}>{e.target}</a>
                      </td>
                      <td class="mono">{JSON.stringify(e.parameters)}</td>
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
