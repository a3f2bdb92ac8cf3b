// The README and docs/ stay navigable: every relative link in README.md and docs/*.md points at a
// file that exists, and every #anchor at a heading of its target (GitHub's slugs); the README stays
// short enough to read in minutes (the manual lives in docs/).
import { describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const README_MAX_LINES = 260;

/** Markdown outside fenced code blocks, line by line (a `# comment` in a code block is no heading). */
function proseLines(text: string): string[] {
  let fence: string | undefined;
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const opener = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (opener && (fence === undefined || opener.startsWith(fence))) {
      fence = fence === undefined ? opener : undefined;
      continue;
    }
    if (fence === undefined) out.push(line);
  }
  return out;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function slugs(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of proseLines(text)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const plain = heading
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
      .replace(/<[^>]+>/g, '');
    const base = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Relative link targets of a Markdown text (inline links and images; code spans are not links). */
function links(text: string): string[] {
  const out: string[] = [];
  for (const line of proseLines(text)) {
    const prose = line.replace(/`[^`]*`/g, '``');
    for (const m of prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) out.push(target);
    }
  }
  return out;
}

const pages = [
  'README.md',
  ...readdirSync(join(PROJECT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('links in README.md and docs/', () => {
  test.each(pages)('%s: every relative link resolves, anchors included', (page) => {
    const file = join(PROJECT, page);
    const broken: string[] = [];
    for (const target of links(readFileSync(file, 'utf8'))) {
      const [path, anchor] = target.split('#', 2) as [string, string | undefined];
      const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      if (!dest.startsWith(PROJECT + '/') && dest !== PROJECT) {
        broken.push(`${target}: outside the repository`);
        continue;
      }
      if (!existsSync(dest)) {
        broken.push(`${target}: no such file ${relative(PROJECT, dest)}`);
        continue;
      }
      if (anchor !== undefined && dest.endsWith('.md') && !slugs(readFileSync(dest, 'utf8')).has(anchor)) {
        broken.push(`${target}: no heading #${anchor} in ${relative(PROJECT, dest)}`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('every page is reachable: each docs/*.md is linked from the README', () => {
    const linked = new Set(links(readFileSync(join(PROJECT, 'README.md'), 'utf8')).map((t) => t.split('#')[0]));
    expect(pages.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
  });
});

describe('README.md', () => {
  const text = readFileSync(join(PROJECT, 'README.md'), 'utf8');

  test(`fits a newcomer: at most ${README_MAX_LINES} lines`, () => {
    expect(text.split('\n').length).toBeLessThanOrEqual(README_MAX_LINES);
  });

  test('keeps the offline section the fetch error points to, and the test command CI runs', () => {
    // stages/lib-errors.ts: (README: "Offline or behind a firewall?")
    expect(slugs(text).has('offline-or-behind-a-firewall')).toBe(true);
    const hint = readFileSync(join(PROJECT, 'stages', 'lib-errors.ts'), 'utf8');
    expect(hint).toContain('README: "Offline or behind a firewall?"');
    expect(text).toMatch(/^npm test\b/m);
  });
});

describe('the slug and link rules', () => {
  test('GitHub slugs: code, punctuation and dashes', () => {
    const s = slugs(
      '# A better recipe: `pipelines/improved.yaml`\n## `promote:` — champion and challenger\n## Sweeps: `run --matrix`\n## Tests\n## Tests\n```sh\n# not a heading\n```\n',
    );
    expect([...s]).toEqual(['a-better-recipe-pipelinesimprovedyaml', 'promote--champion-and-challenger', 'sweeps-run---matrix', 'tests', 'tests-1']);
  });

  test('links in code are not links; external links are not checked', () => {
    expect(links('see [a](a.md#x), `[b](b.md)`, [c](https://x.org/c), ![d](img/d.png)\n```\n[e](e.md)\n```\n')).toEqual(['a.md#x', 'img/d.png']);
  });
});
