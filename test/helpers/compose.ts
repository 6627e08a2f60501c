import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';

type Environment = Record<string, string>;

/** `${NAME:-default}`, `${NAME-default}` and `${NAME}` resolved against `shell`, as compose does. */
function interpolate(value: string, shell: Environment): string {
  return value.replace(
    /\$\{(\w+)(?:(:?-)([^}]*))?\}/g,
    (_all, name: string, op?: string, fallback = '') => {
      const set = shell[name];
      if (op === ':-') return set === undefined || set === '' ? fallback : set;
      if (op === '-') return set ?? fallback;
      return set ?? '';
    },
  );
}

/** A mapping with its YAML merge keys (`<<: *anchor` or a list of them) applied. */
function merged(mapping: Record<string, unknown>): Environment {
  const { '<<': bases, ...own } = mapping;
  const list = bases === undefined ? [] : Array.isArray(bases) ? bases : [bases];
  return Object.assign({}, ...list.map((b) => merged(b as Record<string, unknown>)), own);
}

/**
 * The environment docker-compose.yml gives `service`, with `shell` as the variables set where
 * `docker compose up` runs (none: `{}`). Variables compose sets to '' are left out, as the app
 * treats an empty value as unset.
 */
export function composeEnvironment(service: string, shell: Environment = {}): Environment {
  const file = load(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8')) as {
    services: Record<string, { environment: Record<string, unknown> }>;
  };
  const env: Environment = {};
  for (const [name, value] of Object.entries(merged(file.services[service].environment))) {
    const resolved = interpolate(String(value), shell);
    if (resolved !== '') env[name] = resolved;
  }
  return env;
}
