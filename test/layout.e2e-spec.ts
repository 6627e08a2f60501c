import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/**
 * The house rules of src/, read from the imports of its sources (the TypeScript compiler's own
 * parser, so type-only imports count too): no import circles, and the layers of the README's
 * project layout. The API answers requests, the engine (delivery, maintenance) works in the
 * worker, and both change the queue only through src/queue, which needs neither. And no source or
 * test file outside migrations and generated code is longer than MAX_LINES.
 */

const SRC = resolve('src');

/** The folders of the HTTP API. */
const API = [
  'admin-ui',
  'audit',
  'dead-letter',
  'deliveries',
  'health',
  'lines',
  'messages',
  'topics',
  'webhook-health',
  'webhooks',
];
/** The worker's engine. */
const ENGINE = ['delivery', 'maintenance'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'migrations' ? [] : sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

/** Each source file (relative to src/) with the src/ files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, false);
    const local = importedFiles
      .map((imported) => imported.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(SRC, resolve(dirname(file), name.replace(/\.js$/, '.ts'))));
    graph.set(relative(SRC, file), local);
  }
  return graph;
}

/** Every import circle, each once, as the files around it. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string) => {
    const at = path.indexOf(file);
    if (at >= 0) {
      found.push([...path.slice(at), file]);
      return;
    }
    if (done.has(file)) return;
    path.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    path.pop();
    done.add(file);
  };
  for (const file of graph.keys()) visit(file);
  return found;
}

const folderOf = (file: string) => (file.includes('/') ? file.split('/')[0] : '');

/** The imports of files in `from` folders that reach into `into` folders, as "a -> b". */
function crossings(graph: Map<string, string[]>, from: string[], into: string[]): string[] {
  return [...graph].flatMap(([file, imports]) =>
    from.includes(folderOf(file))
      ? imports.filter((target) => into.includes(folderOf(target))).map((t) => `${file} -> ${t}`)
      : [],
  );
}

describe('the layout of src/', () => {
  const graph = importGraph();

  it('reads the imports it checks', () => {
    expect(graph.get('lines/lines.service.ts')).toContain('queue/queue.sql.ts');
    expect(graph.get('delivery/record.ts')).toContain('queue/webhook-state.ts');
  });

  it('has no import circles', () => {
    expect(circles(graph)).toEqual([]);
  });

  it('finds a circle when there is one', () => {
    const circle = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['a.ts']],
    ]);
    expect(circles(circle)).toEqual([['a.ts', 'b.ts', 'a.ts']]);
  });

  it('keeps the API out of the engine and the engine out of the API', () => {
    expect(crossings(graph, API, ENGINE)).toEqual([]);
    expect(crossings(graph, ENGINE, API)).toEqual([]);
  });

  it('keeps the queue free of the API, the engine and the metrics', () => {
    expect(crossings(graph, ['queue'], [...API, ...ENGINE, 'metrics'])).toEqual([]);
  });

  it('keeps the metrics free of the API and the engine', () => {
    expect(crossings(graph, ['metrics'], [...API, ...ENGINE])).toEqual([]);
  });
});

/** The most lines a source, test, bench, UI or SQL file may have: past it, it does two things. */
const MAX_LINES = 400;

/** Where the code is, and what counts as code there. */
const CODE_ROOTS = [
  'src',
  'test',
  'bench',
  'ui',
  'sql',
  'packages/client/src',
  'packages/receiver/src',
];
const CODE = /\.(ts|tsx|mts|js|mjs|cjs|css|sql)$/;
/** Folders that are not written by hand, or not code: migrations never change once landed. */
const NOT_CHECKED = new Set(['node_modules', 'dist', 'migrations', 'results']);

/** Every code file below `dir`, migrations and generated code left out. */
function codeFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      return NOT_CHECKED.has(entry.name) || entry.name.startsWith('generated')
        ? []
        : codeFiles(path);
    }
    return CODE.test(entry.name) ? [path] : [];
  });
}

/** The files over `limit` lines, as "path: N lines" (lines counted as `wc -l` does). */
function tooLong(files: string[], limit: number): string[] {
  return files.flatMap((file) => {
    const lines = readFileSync(file, 'utf8').match(/\n/g)?.length ?? 0;
    return lines > limit ? [`${file}: ${lines} lines`] : [];
  });
}

describe('the size of files', () => {
  const files = CODE_ROOTS.flatMap(codeFiles);

  it('reads the files it checks, and not migrations or generated code', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'src/main.ts',
        'test/layout.e2e-spec.ts',
        'bench/run.mjs',
        'ui/main.tsx',
        'ui/style.css',
        'sql/notify_trigger.sql',
        'packages/receiver/src/index.ts',
        'packages/client/src/index.ts',
      ]),
    );
    expect(files.filter((f) => /\/(migrations|generated[^/]*)\//.test(f))).toEqual([]);
  });

  it(`keeps every source and test file at ${MAX_LINES} lines or fewer`, () => {
    expect(tooLong(files, MAX_LINES)).toEqual([]);
  });

  it('finds a file over the limit when there is one', () => {
    expect(tooLong(['test/layout.e2e-spec.ts'], 10)).toEqual([
      expect.stringMatching(/^test\/layout\.e2e-spec\.ts: \d+ lines$/),
    ]);
  });
});
