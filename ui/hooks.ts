import { useEffect, useRef, useState } from 'preact/hooks';

export const REFRESH_MS = 3000;

export interface Polled<T> {
  data?: T;
  error?: Error;
  /** When the last load finished. */
  at?: Date;
  /** Loads again now (after an action). */
  reload: () => void;
}

/**
 * Loads on mount, whenever `deps` change, and every REFRESH_MS while the tab is visible. A
 * failed refresh keeps the last data beside its error, so a blip does not blank the page.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[]): Polled<T> {
  const [state, setState] = useState<Omit<Polled<T>, 'reload'>>({});
  const [kick, setKick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const depsKey = JSON.stringify(deps);
  const shownKey = useRef(depsKey);

  useEffect(() => {
    if (shownKey.current !== depsKey) {
      shownKey.current = depsKey;
      setState({});
    }
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (document.visibilityState === 'visible') {
        try {
          const data = await loadRef.current();
          if (alive) setState({ data, at: new Date() });
        } catch (error) {
          if (alive) setState((s) => ({ ...s, error: error as Error, at: new Date() }));
        }
      }
      if (alive) timer = setTimeout(run, REFRESH_MS);
    };
    void run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [depsKey, kick]);

  return { ...state, reload: () => setKick((k) => k + 1) };
}

/** The part of the URL after '#', kept in state: the UI's router. */
export function useHashPath(): string {
  const read = () => location.hash.replace(/^#/, '') || '/';
  const [path, setPath] = useState(read);
  useEffect(() => {
    const changed = () => setPath(read());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return path;
}
