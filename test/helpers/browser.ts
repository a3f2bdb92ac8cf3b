// Opens a generated report in a real headless Chromium (the system's, driven by playwright-core:
// no browser download) and reports what a reader would see: marks per chart, the confusion
// matrices' cells, whether every image decoded, console errors, and any network request.
import { expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const PROJECT_ROOT = resolve(new URL('../../..', import.meta.url).pathname);

/** Where tests save screenshots (git-ignored); CI can keep it as a build artifact. */
export const TEST_ARTIFACTS = process.env.TEST_ARTIFACTS_DIR ?? join(PROJECT_ROOT, 'test-artifacts');

/** The system Chromium ($CHROMIUM_PATH, else Debian's), or undefined when there is none. */
export function chromiumPath(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(p));
}

/**
 * Whether browser tests can run here. Without a Chromium they are skipped, saying so — unless
 * REQUIRE_BROWSER is set (CI sets it), where a missing browser must fail rather than pass quietly.
 */
export function browserAvailable(suite: string): boolean {
  if (chromiumPath()) return true;
  if (process.env.REQUIRE_BROWSER) return true; // the test runs and fails on the missing browser
  console.warn(`${suite}: no Chromium found (set CHROMIUM_PATH, or apt-get install chromium): browser checks skipped`);
  return false;
}

export interface ChartFacts {
  id: string;
  /** Graphic marks drawn (lines, points, rects, bars, text), legends and axes excluded. */
  marks: number;
}

export interface ConfusionFacts {
  id: string;
  k: number;
  /** The matrix the page embeds as data (what the cells must show). */
  expected: number[][];
  /** aria-labels of the heatmap's rect marks: `true X, predicted Y: N`. */
  cellLabels: string[];
  /** The numbers drawn in the cells, in drawing order. */
  cellTexts: string[];
}

export interface ReportFacts {
  title: string;
  charts: ChartFacts[];
  confusion: ConfusionFacts[];
  images: { alt: string; naturalWidth: number; complete: boolean }[];
  consoleErrors: string[];
  /** Requests for anything but the report file itself and data: URIs (there should be none). */
  externalRequests: string[];
  sections: string[];
  text: string;
}

/** The few DOM members the page-side inspection uses. */
interface PageElement {
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
  textContent: string | null;
  id: string;
}
interface PageDocument {
  title: string;
  body: { innerText: string };
  images: Iterable<{ alt: string; naturalWidth: number; complete: boolean }>;
  querySelectorAll(selector: string): Iterable<PageElement>;
}

export async function inspectReport(htmlPath: string, screenshotName: string): Promise<ReportFacts> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('no Chromium: install Debian chromium or set CHROMIUM_PATH (REQUIRE_BROWSER is set)');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    // As root (CI) Chromium needs --no-sandbox; the network flags keep it from calling home on a closed network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const consoleErrors: string[] = [];
    const externalRequests: string[] = [];
    const url = pathToFileURL(htmlPath).href;
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => {
      if (r.url() !== url && !r.url().startsWith('data:')) externalRequests.push(r.url());
    });
    await page.goto(url, { waitUntil: 'load' });
    // Images are data URIs: `load` means decoded, but wait for every one explicitly.
    await page.waitForFunction(() => [...(globalThis as unknown as { document: PageDocument }).document.images].every((i) => i.complete));
    const facts = await page.evaluate(() => {
      // Runs in the page; typed by hand because this project compiles without the DOM library.
      const document = (globalThis as unknown as { document: PageDocument }).document;
      const charts = [...document.querySelectorAll('figure.chart')].map((f) => ({
        id: f.getAttribute('data-chart') ?? '',
        marks: f.querySelectorAll('svg g.role-mark > [role="graphics-symbol"]').length,
      }));
      const confusion = [...document.querySelectorAll('figure.chart[data-chart^="confusion"]')].map((f) => ({
        id: f.getAttribute('data-chart') ?? '',
        k: Number(f.getAttribute('data-k')),
        expected: JSON.parse(f.getAttribute('data-counts') ?? '[]') as number[][],
        cellLabels: [...f.querySelectorAll('svg [aria-roledescription="rect mark"]')].map((e) => e.getAttribute('aria-label') ?? ''),
        cellTexts: [...f.querySelectorAll('svg g.mark-text [aria-roledescription="text mark"]')].map((e) => e.textContent ?? ''),
      }));
      // Images inside <details> are decoded too; naturalWidth does not depend on visibility.
      const images = [...document.images].map((i) => ({ alt: i.alt, naturalWidth: i.naturalWidth, complete: i.complete }));
      const sections = [...document.querySelectorAll('main section[id]')].map((s) => s.id);
      return { title: document.title, charts, confusion, images, sections, text: document.body.innerText };
    });
    await mkdir(TEST_ARTIFACTS, { recursive: true });
    const shot = join(TEST_ARTIFACTS, screenshotName);
    await mkdir(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    return { ...facts, consoleErrors, externalRequests };
  } finally {
    await browser.close();
  }
}

/** Parses `true X, predicted Y: N` (the heatmap's mark descriptions) into a K×K matrix over `classes`. */
export function matrixFromLabels(labels: readonly string[], classes: readonly string[]): number[][] {
  const m = classes.map(() => classes.map(() => NaN));
  for (const label of labels) {
    const match = /^true (.+), predicted (.+): (\d+)$/.exec(label);
    if (!match) throw new Error(`unexpected cell label ${JSON.stringify(label)}`);
    const t = classes.indexOf(match[1]!);
    const p = classes.indexOf(match[2]!);
    if (t < 0 || p < 0) throw new Error(`cell label names an unknown class: ${label}`);
    m[t]![p] = Number(match[3]);
  }
  return m;
}

/** What every report must satisfy in the browser, whatever its inputs. */
export function expectReadableReport(facts: ReportFacts, classes: readonly string[]): void {
  expect(facts.consoleErrors).toEqual([]);
  expect(facts.externalRequests).toEqual([]);
  expect(facts.charts.length).toBeGreaterThan(0);
  for (const chart of facts.charts) expect({ chart: chart.id, hasMarks: chart.marks > 0 }).toEqual({ chart: chart.id, hasMarks: true });
  for (const c of facts.confusion) {
    const k = classes.length;
    expect(c.k).toBe(k);
    expect(c.cellLabels).toHaveLength(k * k);
    expect(c.cellTexts).toHaveLength(k * k);
    // The cells say the counts of the matrix the page was made from...
    expect(matrixFromLabels(c.cellLabels, classes)).toEqual(c.expected);
    // ...and the numbers drawn are those counts.
    expect(c.cellTexts.map(Number).sort((a, b) => a - b)).toEqual(c.expected.flat().sort((a, b) => a - b));
  }
  expect(facts.images.length).toBeGreaterThan(0);
  for (const img of facts.images) expect({ alt: img.alt, decoded: img.complete && img.naturalWidth > 0 }).toEqual({ alt: img.alt, decoded: true });
}

export interface LayoutFacts {
  /** Whether the hyperparameters table is shown (not folded away in a closed <details>), at 1200 px. */
  hyperparametersVisible: boolean;
  /** Per width, the menu links whose target ends up under the pinned menu after a click. */
  hiddenTargets: { width: number; id: string; targetTop: number; menuBottom: number }[];
  /** Menu links clicked per width. */
  linksClicked: Record<number, number>;
  /** document.documentElement.scrollWidth at a 420 px wide viewport, and what sticks out. */
  scrollWidthAt420: number;
  overflowingAt420: string[];
}

interface LayoutElement {
  getBoundingClientRect(): { top: number; bottom: number; right: number };
  parentElement: LayoutElement | null;
  getAttribute(name: string): string | null;
  tagName: string;
  className: unknown;
  id: string;
}
interface LayoutDocument {
  documentElement: { scrollWidth: number; clientWidth: number };
  querySelector(selector: string): LayoutElement | null;
  getElementById(id: string): LayoutElement | null;
  querySelectorAll(selector: string): Iterable<LayoutElement>;
}

/**
 * How the page holds together for a reader: the hyperparameters table in view, every menu link's
 * target below the pinned menu after clicking it (at 1200 and 420 px), and no sideways scrolling
 * of the whole page on a 420 px phone.
 */
export async function inspectLayout(htmlPath: string): Promise<LayoutFacts> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('no Chromium: install Debian chromium or set CHROMIUM_PATH (REQUIRE_BROWSER is set)');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  try {
    const url = pathToFileURL(htmlPath).href;
    const facts: LayoutFacts = { hyperparametersVisible: false, hiddenTargets: [], linksClicked: {}, scrollWidthAt420: NaN, overflowingAt420: [] };
    for (const width of [1200, 420]) {
      const page = await browser.newPage({ viewport: { width, height: 800 } });
      await page.goto(url, { waitUntil: 'load' });
      if (width === 1200) facts.hyperparametersVisible = await page.locator('table.hyperparameters').isVisible();
      const links = await page.locator('nav a').all();
      facts.linksClicked[width] = links.length;
      for (const link of links) {
        const id = ((await link.getAttribute('href')) ?? '').slice(1);
        await link.click();
        await page.waitForFunction((hash) => (globalThis as unknown as { location: { hash: string } }).location.hash === hash, `#${id}`);
        const where = await page.evaluate((target) => {
          const document = (globalThis as unknown as { document: LayoutDocument }).document;
          const el = document.getElementById(target);
          const nav = document.querySelector('nav');
          // The heading a reader looks for: the target's own, else the target itself.
          const heading = el?.tagName === 'SECTION' ? (document.querySelector(`[id="${target}"] > h2`) ?? el) : el;
          return { targetTop: heading?.getBoundingClientRect().top ?? NaN, menuBottom: nav?.getBoundingClientRect().bottom ?? 0 };
        }, id);
        if (!(where.targetTop >= where.menuBottom - 0.5)) facts.hiddenTargets.push({ width, id, ...where });
      }
      if (width === 420) {
        const overflow = await page.evaluate(() => {
          const document = (globalThis as unknown as { document: LayoutDocument }).document;
          const { getComputedStyle } = globalThis as unknown as { getComputedStyle(e: LayoutElement): { overflowX: string } };
          const limit = document.documentElement.clientWidth;
          // Content of a box that scrolls (or clips) on its own does not widen the page.
          const clipped = (e: LayoutElement) => {
            for (let p = e.parentElement; p; p = p.parentElement) if (getComputedStyle(p).overflowX !== 'visible') return true;
            return false;
          };
          const wide = [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > limit + 0.5 && !clipped(e))
            .map(
              (e) =>
                `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${typeof e.className === 'string' && e.className ? `.${e.className.split(' ').join('.')}` : ''}`,
            );
          return { scrollWidth: document.documentElement.scrollWidth, wide };
        });
        facts.scrollWidthAt420 = overflow.scrollWidth;
        facts.overflowingAt420 = overflow.wide;
      }
      await page.close();
    }
    return facts;
  } finally {
    await browser.close();
  }
}
