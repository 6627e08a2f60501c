import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** The user's documentation: README.md and docs/*.md. */
const ROOT = resolve(import.meta.dirname, '..');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((f) => join('docs', f))].filter(
  (f) => f.endsWith('.md'),
);

/** The text outside fenced code blocks, where a `[x](y)` is a link. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of prose(readFileSync(file, 'utf8')).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = anchor(heading);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('the documentation', () => {
  it.each(PAGES)('%s: every relative link resolves, anchors included', (page) => {
    const file = join(ROOT, page);
    const broken: string[] = [];
    for (const [, target] of prose(readFileSync(file, 'utf8')).matchAll(
      /\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g,
    )) {
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
      const [path, hash] = target.split('#');
      const to = path ? resolve(dirname(file), decodeURIComponent(path)) : file;
      if (!existsSync(to)) {
        broken.push(`${target}: no ${relative(ROOT, to)}`);
      } else if (hash && statSync(to).isFile() && to.endsWith('.md') && !anchorsOf(to).has(hash)) {
        broken.push(`${target}: no heading #${hash} in ${relative(ROOT, to)}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it.each(PAGES)('%s speaks to users: no internal design references or issue numbers', (page) => {
    const text = readFileSync(join(ROOT, page), 'utf8');
    const internal = [
      ...(text.match(/DESIGN|§/g) ?? []),
      ...(text.match(/\bissues? #?\d+/gi) ?? []),
    ];
    expect(internal).toEqual([]);
  });
});
