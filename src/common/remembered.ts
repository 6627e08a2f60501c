/**
 * `fn` remembered for the last `limit` distinct arguments; past that the memory starts afresh.
 * For work a delivery repeats that depends only on its webhook's settings (a URL's origin or
 * host, a secret's key): a busy worker redoes it for every message otherwise.
 */
export function remembered<T>(fn: (key: string) => T, limit = 1000): (key: string) => T {
  const values = new Map<string, T>();
  return (key) => {
    let value = values.get(key);
    if (value === undefined && !values.has(key)) {
      if (values.size >= limit) values.clear();
      value = fn(key);
      values.set(key, value);
    }
    return value as T;
  };
}
