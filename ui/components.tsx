import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, Delivery, NeedsKey, PublishedMessage, Topic } from './api';
import type { Polled } from './hooks';

export function Panel(props: {
  title: string;
  extra?: ComponentChildren;
  children: ComponentChildren;
}) {
  return (
    <section class="panel">
      <header class="panel-head">
        <h2>{props.title}</h2>
        {props.extra}
      </header>
      {props.children}
    </section>
  );
}

/** A word in a coloured pill: statuses and line states. */
export function Badge(props: { value: string; title?: string }) {
  return (
    <span class={`badge badge-${props.value}`} title={props.title}>
      {props.value.replace('_', ' ')}
    </span>
  );
}

/** A status code: green for 2xx, red otherwise. */
export function StatusCode(props: { code: number | null }) {
  if (props.code === null) return <span class="muted">–</span>;
  return <span class={props.code < 300 ? 'code-ok' : 'code-bad'}>{props.code}</span>;
}

/** The last status code and error of a delivery (the error alone when it only repeats the code). */
export function LastAnswer(props: { delivery: Delivery }) {
  const { last_status_code: code, last_error: error } = props.delivery;
  return (
    <>
      <StatusCode code={code} />
      {error && error !== `HTTP ${code}` && <span class="muted"> {error}</span>}
    </>
  );
}

/** The attempts view of a delivery (with its message, payload and webhook). */
export function attemptsLink(d: Delivery): string {
  return `#/deliveries/${d.id}`;
}

/**
 * A table that becomes one card per row on a narrow window (styles/narrow.css): each cell is labelled
 * there with its column's heading, copied onto the cell after every render.
 */
export function Table(props: { children: ComponentChildren }) {
  const table = useRef<HTMLTableElement>(null);
  useLayoutEffect(() => {
    const headings = [...(table.current?.tHead?.rows[0]?.cells ?? [])].map(
      (th) => th.textContent ?? '',
    );
    for (const row of table.current?.tBodies[0]?.rows ?? []) {
      [...row.cells].forEach((cell, i) => {
        if (headings[i]) cell.dataset.label = headings[i];
      });
    }
  });
  return (
    <div class="table-wrap">
      <table ref={table}>{props.children}</table>
    </div>
  );
}

/**
 * What a load came to: nothing while loading the first time, the error if it failed. Renders
 * `children(data)` when there is data.
 */
export function Loaded<T>(props: {
  polled: Polled<T>;
  what: string;
  children: (data: T) => ComponentChildren;
}) {
  const { data, error } = props.polled;
  return (
    <>
      {error && !(error instanceof NeedsKey) && (
        <p class="error">
          Could not load {props.what}: {error.message}
        </p>
      )}
      {data === undefined ? !error && <p class="muted">Loading…</p> : props.children(data)}
    </>
  );
}

/** "updated 12:00:03", beside a panel title: the page refreshes by itself. */
export function Updated(props: { at?: Date }) {
  return props.at ? <span class="updated">updated {props.at.toLocaleTimeString()}</span> : null;
}

/**
 * A button that runs one API action, shows it running, then reports its result or error. With
 * `confirm`, the first click only asks (the question beside "Yes, <label>" and "Cancel").
 */
export function Action(props: {
  label: string;
  run: () => Promise<string | void>;
  done?: () => void;
  kind?: 'primary' | 'danger' | 'plain';
  disabled?: boolean;
  confirm?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [asking, setAsking] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const go = async () => {
    setAsking(false);
    setBusy(true);
    setResult(null);
    try {
      const text = await props.run();
      setResult(text ? { ok: true, text } : null);
      props.done?.();
    } catch (error) {
      setResult({ ok: false, text: (error as Error).message });
    } finally {
      setBusy(false);
    }
  };
  if (asking) {
    return (
      <span class="action confirm" role="alertdialog" aria-label={props.confirm}>
        <span class="confirm-question">{props.confirm}</span>
        <button type="button" class={`btn btn-${props.kind ?? 'primary'}`} onClick={go}>
          Yes, {props.label.toLowerCase()}
        </button>
        <button type="button" class="btn btn-plain" onClick={() => setAsking(false)}>
          Cancel
        </button>
      </span>
    );
  }
  return (
    <span class="action">
      <button
        type="button"
        class={`btn btn-${props.kind ?? 'plain'}`}
        disabled={busy || props.disabled}
        onClick={() => (props.confirm ? setAsking(true) : void go())}
      >
        {busy ? `${props.label}…` : props.label}
      </button>
      {result && <span class={result.ok ? 'ok-inline' : 'error-inline'}>{result.text}</span>}
    </span>
  );
}

/** Publish one message: to a fixed topic, or to one picked from `topics`. */
export function PublishForm(props: { topics: Topic[]; fixedTopic?: Topic; done?: () => void }) {
  const [topicName, setTopicName] = useState('');
  const [partitionKey, setPartitionKey] = useState('user-42');
  const [payload, setPayload] = useState('{"event": "order.created"}');
  const [eventType, setEventType] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const topic = props.fixedTopic?.name ?? (topicName || props.topics[0]?.name);

  const submit = async (event: Event) => {
    event.preventDefault();
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch (error) {
      setResult({ ok: false, text: `the payload is not JSON: ${(error as Error).message}` });
      return;
    }
    try {
      const message = await api<PublishedMessage>(
        'POST',
        `/topics/${encodeURIComponent(topic!)}/messages`,
        {
          partition_key: partitionKey,
          payload: parsed,
          ...(eventType === '' ? {} : { event_type: eventType }),
        },
      );
      setResult({
        ok: true,
        text: `published message ${message.id}: sequence ${message.sequence} of ${message.partition_key}`,
      });
      props.done?.();
    } catch (error) {
      setResult({ ok: false, text: (error as Error).message });
    }
  };

  if (!topic) return <p class="muted">Create a topic first.</p>;
  return (
    <form class="form" onSubmit={submit}>
      {!props.fixedTopic && (
        <label>
          Topic
          {/* Typed (any of 100,000 topics), the listed ones offered. */}
          <input
            name="topic"
            list="publish-topics"
            value={topic}
            required
            onInput={(e) => setTopicName(e.currentTarget.value)}
          />
          <datalist id="publish-topics">
            {props.topics.map((t) => (
              <option key={t.id} value={t.name} />
            ))}
          </datalist>
        </label>
      )}
      <label>
        Partition key
        <input
          name="partition_key"
          value={partitionKey}
          required
          onInput={(e) => setPartitionKey(e.currentTarget.value)}
        />
      </label>
      <label>
        Event type
        <input
          name="event_type"
          placeholder="optional: order.created"
          value={eventType}
          onInput={(e) => setEventType(e.currentTarget.value)}
        />
      </label>
      <label class="grow">
        Payload (JSON)
        <textarea
          name="payload"
          rows={3}
          value={payload}
          onInput={(e) => setPayload(e.currentTarget.value)}
        />
      </label>
      <div class="form-end">
        <button type="submit" class="btn btn-primary">
          Publish
        </button>
        {result && <span class={result.ok ? 'ok-inline' : 'error-inline'}>{result.text}</span>}
      </div>
    </form>
  );
}

/** Keyset paging over an id-ordered list: the `after` of every page opened so far. */
export function usePager() {
  const [afters, setAfters] = useState<number[]>([0]);
  return {
    /** The `after` of the page shown (undefined for the first). */
    after: afters[afters.length - 1] || undefined,
    reset: () => setAfters([0]),
    /** Previous/next buttons under `list`, a page of `size` rows. */
    controls: (list: Array<{ id: number }>, size: number) => (
      <div class="pager">
        {afters.length > 1 && (
          <button
            type="button"
            class="btn btn-plain"
            onClick={() => setAfters(afters.slice(0, -1))}
          >
            ← previous
          </button>
        )}
        {list.length === size && (
          <button
            type="button"
            class="btn btn-plain"
            onClick={() => setAfters([...afters, list[list.length - 1].id])}
          >
            next {size} →
          </button>
        )}
      </div>
    ),
  };
}
