import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { apiKey, query, whenKeyNeeded } from './api';
import { REFRESH_MS, useHashPath } from './hooks';
import { AttemptsView } from './views/attempts';
import { AuditView } from './views/audit';
import { MessageView } from './views/message';
import { SearchView } from './views/search';
import { DeadLetterView } from './views/dead-letter';
import { TopicView } from './views/topic';
import { TopicsView } from './views/topics';
import { WebhookView } from './views/webhook';

/**
 * Hash routes: #/, #/topics/1, #/topics/1/webhooks/2, #/dead-letter?topic_id=1, #/deliveries/3,
 * #/messages/4, #/search?q=customer-42, #/audit-log?target=webhook:2.
 */
function Route(props: { path: string }) {
  const [pathname, search = ''] = props.path.split('?');
  const params = new URLSearchParams(search);
  const id = (name: string) => Number(params.get(name)) || undefined;
  let m: RegExpMatchArray | null;
  if ((m = pathname.match(/^\/topics\/(\d+)\/webhooks\/(\d+)$/))) {
    return <WebhookView topicId={Number(m[1])} webhookId={Number(m[2])} />;
  }
  if ((m = pathname.match(/^\/topics\/(\d+)$/))) return <TopicView topicId={Number(m[1])} />;
  if ((m = pathname.match(/^\/deliveries\/(\d+)$/)))
    return <AttemptsView deliveryId={Number(m[1])} />;
  if ((m = pathname.match(/^\/messages\/(\d+)$/))) return <MessageView messageId={Number(m[1])} />;
  if (pathname === '/search' && params.get('q')) {
    return (
      <SearchView
        term={params.get('q')!}
        topicId={id('topic_id')}
        all={params.get('all') === '1'}
      />
    );
  }
  if (pathname === '/audit-log') return <AuditView target={params.get('target') || undefined} />;
  if (pathname === '/dead-letter') {
    return <DeadLetterView filter={{ topicId: id('topic_id'), webhookId: id('webhook_id') }} />;
  }
  return <TopicsView />;
}

/**
 * The search box: a message id (the webhook-id a receiver saw), a delivery id, a partition key
 * or an idempotency key; on a topic's pages keys are looked up in that topic.
 */
function SearchBox(props: { path: string }) {
  // Keyed by the route: it shows the term searched on a search page, nothing elsewhere.
  const [term, setTerm] = useState(() =>
    props.path.startsWith('/search?')
      ? (new URLSearchParams(props.path.split('?')[1]).get('q') ?? '')
      : '',
  );
  const topicId = /^\/topics\/(\d+)/.exec(props.path)?.[1];
  return (
    <form
      class="search"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        if (term.trim()) location.hash = `#/search${query({ q: term.trim(), topic_id: topicId })}`;
      }}
    >
      <input
        aria-label="search"
        placeholder="webhook-id, delivery id, partition key, idempotency key"
        value={term}
        onInput={(e) => setTerm(e.currentTarget.value)}
      />
      <button type="submit" class="btn btn-plain">
        Find
      </button>
    </form>
  );
}

function KeyForm(props: { done: () => void }) {
  const [key, setKey] = useState('');
  return (
    <section class="panel key-form">
      <h2>This API needs a key</h2>
      <p>
        It was started with <code>API_KEYS</code>. Enter one of them: it is kept in this browser tab
        only (sessionStorage) and sent as <code>Authorization: Bearer …</code> with every request.
      </p>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          apiKey.set(key.trim());
          props.done();
        }}
      >
        <label class="grow">
          API key
          <input
            name="api_key"
            type="password"
            autocomplete="off"
            value={key}
            required
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </label>
        <div class="form-end">
          <button type="submit" class="btn btn-primary">
            Use this key
          </button>
        </div>
      </form>
      {apiKey.get() && <p class="error">The key in use was refused.</p>}
    </section>
  );
}

function App() {
  const path = useHashPath();
  const [needsKey, setNeedsKey] = useState(false);
  // Bumped when the key changes, so every view loads again with it.
  const [session, setSession] = useState(0);
  useEffect(() => whenKeyNeeded(() => setNeedsKey(true)), []);
  const section = path.startsWith('/dead-letter')
    ? 'dead'
    : path.startsWith('/audit-log')
      ? 'audit'
      : 'topics';
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          pg-webhook-queue
        </a>
        <nav>
          <a href="#/" class={section === 'topics' ? 'current' : undefined}>
            Topics
          </a>
          <a href="#/dead-letter" class={section === 'dead' ? 'current' : undefined}>
            Dead letters
          </a>
          <a href="#/audit-log" class={section === 'audit' ? 'current' : undefined}>
            Audit log
          </a>
          <a href="../docs" target="_blank" rel="noopener">
            API docs
          </a>
        </nav>
        <SearchBox key={path} path={path} />
        <span class="top-end">
          refreshes every {REFRESH_MS / 1000} s
          {apiKey.get() && (
            <button
              type="button"
              class="link"
              onClick={() => {
                apiKey.set(null);
                setSession(session + 1);
              }}
            >
              forget key
            </button>
          )}
        </span>
      </header>
      <main>
        {needsKey ? (
          <KeyForm
            done={() => {
              setNeedsKey(false);
              setSession(session + 1);
            }}
          />
        ) : (
          <Route key={`${session}:${path}`} path={path} />
        )}
      </main>
    </>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the "Loading…" shown until this script runs
render(<App />, root);
