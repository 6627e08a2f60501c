import { useEffect, useState } from 'preact/hooks';
import { api, query, Topic } from './api';

/** How many names the typeahead offers at once. */
const SUGGESTED = 20;

/**
 * A topic chosen by typing its name (or its id): the names that start with what was typed come
 * from GET /topics?name_prefix=…, a few at a time, so it works the same with 100,000 topics.
 * Empty = no topic (`placeholder`). Calls `onPick` with the topic, or undefined when cleared.
 */
export function TopicPicker(props: {
  topicId?: number;
  placeholder: string;
  onPick: (topic: Topic | undefined) => void;
}) {
  const [text, setText] = useState('');
  const [suggested, setSuggested] = useState<Topic[]>([]);
  const listId = 'topic-picker-names';

  // Show the chosen topic's name (it may come from the address).
  useEffect(() => {
    if (props.topicId === undefined) {
      setText('');
      return;
    }
    api<Topic>('GET', `/topics/${props.topicId}`).then(
      (t) => setText(t.name),
      () => setText(String(props.topicId)),
    );
  }, [props.topicId]);

  const typed = async (value: string) => {
    setText(value);
    if (value === '') {
      setSuggested([]);
      if (props.topicId !== undefined) props.onPick(undefined);
      return;
    }
    const exact = suggested.find((t) => t.name === value);
    if (exact) {
      props.onPick(exact);
      return;
    }
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(value)) return;
    setSuggested(
      await api<Topic[]>('GET', `/topics${query({ name_prefix: value, limit: SUGGESTED })}`),
    );
  };

  const submit = async () => {
    if (text === '') return props.onPick(undefined);
    // A name, or an id (digits only), as the API reads a topic.
    await api<Topic>('GET', `/topics/${encodeURIComponent(text)}`).then(props.onPick, () => {});
  };

  return (
    <span class="topic-picker">
      <input
        aria-label="topic"
        list={listId}
        placeholder={props.placeholder}
        value={text}
        onInput={(e) => void typed(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter') void submit();
        }}
        onBlur={() => void (text !== '' && submit())}
      />
      <datalist id={listId}>
        {suggested.map((t) => (
          <option key={t.id} value={t.name} />
        ))}
      </datalist>
    </span>
  );
}
