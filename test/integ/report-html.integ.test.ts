/**
 * The HTML report (SPEC §7) in a real headless browser: Debian's chromium driven by playwright-core.
 * Two files from real CLI processes: the one `demo` writes, and `report --format html` over metrics
 * partitions with label-age records (the maturity curve). Each opens from disk in light and dark mode
 * with no console error and no request besides the file itself; every chart holds as many marks as
 * the same report's JSON has values; charts, table and page are accessible (names, descriptions,
 * contrast). Screenshots are kept in test-artifacts/ (gitignored).
 *
 * Without /usr/bin/chromium the suite is skipped with the reason, except in CI (`CI` set), where
 * .ci/run installs chromium and a missing browser is a failure.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaturityPoint, Report, ReportRow } from '../../src/report/build.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { REPO_ROOT, runCli, tempDirectory } from '../helpers/cli.js';
import { fixtureRows, recordOf, seededRandom, writeMetricsPartition } from '../helpers/metrics-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

/** What one opened page showed. */
interface PageVisit {
  page: Page;
  consoleErrors: string[];
  /** Every request the page made, the file itself included. */
  requests: string[];
}

/** Opens `file` in a fresh page of `colorScheme`; any request but the file itself is aborted and recorded. */
async function visit(browser: Browser, file: string, colorScheme: 'light' | 'dark'): Promise<PageVisit> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.emulateMedia({ colorScheme });
  const own = pathToFileURL(file).href;
  const consoleErrors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  page.on('request', (request) => requests.push(request.url()));
  await page.route('**/*', (route) => (route.request().url() === own ? route.continue() : route.abort()));
  await page.goto(own, { waitUntil: 'load' });
  return { page, consoleErrors, requests };
}

/** Marks drawn in each figure: data points (symbols of the mark layers, not the legend), CI rules and lines. */
async function marksByFigure(page: Page): Promise<Map<string, { points: number; rules: number; lines: number; declared: number }>> {
  const counted = await page.$$eval('figure[data-chart]', (figures) =>
    figures.map((f) => ({
      id: f.getAttribute('data-chart')!,
      declared: Number(f.getAttribute('data-points')),
      points: f.querySelectorAll('g.mark-symbol.role-mark > path').length,
      rules: f.querySelectorAll('g.mark-rule.role-mark > line').length,
      lines: f.querySelectorAll('g.mark-line.role-mark > path').length,
    })),
  );
  return new Map(counted.map(({ id, ...marks }) => [id, marks]));
}

const series = (r: { model: string | null; version: string | null }): string => `${r.model}@${r.version}`;
const nonNull = (items: readonly object[], field: string): number => items.filter((i) => (i as Record<string, unknown>)[field] !== null).length;
const stageLines = (rows: readonly ReportRow[], key: (r: ReportRow) => string): number => new Set(rows.map((r) => `${key(r)} ${r.stage}`)).size;

/** The marks each chart must hold, computed from the report's JSON (the same content, SPEC §7). */
function expectedMarks(report: Report): Map<string, { points: number; rules?: number; lines?: number }> {
  const expected = new Map<string, { points: number; rules?: number; lines?: number }>();
  const windows = report.rows.filter((r) => r.kind === 'window');
  for (const id of new Set(windows.map(series))) {
    const rows = windows.filter((r) => series(r) === id && r.slice === 'all');
    for (const metric of ['mse', 'mae'] as const) expected.set(`${metric}-${id}`, { points: nonNull(rows, metric), rules: nonNull(rows, `${metric}_ci_low`) });
  }
  const segments = report.segment_rows.filter((r) => r.kind === 'window');
  for (const id of new Set(segments.map((r) => `${series(r)} ${r.slice!.split('=')[0]}`))) {
    const rows = segments.filter((r) => `${series(r)} ${r.slice!.split('=')[0]}` === id);
    expected.set(`segments-${id}`, { points: nonNull(rows, 'mse'), rules: nonNull(rows, 'mse_ci_low') });
  }
  const whole = windows.filter((r) => r.slice === 'all');
  if (whole.length > 0) expected.set('coverage', { points: nonNull(whole, 'coverage'), lines: stageLines(whole, series) });
  const curves = new Map<string, MaturityPoint[]>();
  for (const p of report.maturity) curves.set(series(p), [...(curves.get(series(p)) ?? []), p]);
  for (const [id, points] of curves) {
    expected.set(`maturity-coverage-${id}`, { points: nonNull(points, 'coverage'), rules: 0 });
    expected.set(`maturity-mse-${id}`, { points: nonNull(points, 'mse'), rules: nonNull(points, 'mse_ci_low') });
  }
  return expected;
}

/** WCAG contrast ratio of two CSS colours as `rgb(r, g, b)` or `#rrggbb`. */
function contrast(a: string, b: string): number {
  const luminance = (color: string): number => {
    const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    const parts = hex !== null ? hex.slice(1).map((h) => parseInt(h, 16)) : (color.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number);
    expect(parts, color).toHaveLength(3);
    const [r, g, bl] = parts.map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

/** The checks every report page passes, in either colour scheme. */
async function checkPage(browser: Browser, file: string, report: Report, colorScheme: 'light' | 'dark', screenshot: string): Promise<Map<string, { points: number; rules: number; lines: number; declared: number }>> {
  const { page, consoleErrors, requests } = await visit(browser, file, colorScheme);
  try {
    expect(consoleErrors).toEqual([]);
    expect(requests).toEqual([pathToFileURL(file).href]);

    const marks = await marksByFigure(page);
    const expected = expectedMarks(report);
    expect([...marks.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [id, want] of expected) {
      const got = marks.get(id)!;
      expect(got.points, `${id} points`).toBe(want.points);
      expect(got.declared, `${id} data-points`).toBe(want.points);
      if (want.rules !== undefined) expect(got.rules, `${id} CI rules`).toBe(want.rules);
      if (want.lines !== undefined) expect(got.lines, `${id} lines`).toBe(want.lines);
    }
    expect(await page.locator('table tbody tr').count()).toBe(report.rows.filter((r) => r.kind !== 'missing').length);

    // Accessibility: each chart is one image named by its title and described by its caption.
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    expect(await page.locator('h1').count()).toBe(1);
    const images = page.getByRole('img');
    expect(await images.count()).toBe(marks.size);
    const svgText = await page.$$eval('figure[data-chart]', (figures) =>
      figures.map((f) => ({ title: f.querySelector('svg > title')?.textContent ?? '', desc: f.querySelector('svg > desc')?.textContent ?? '', caption: f.querySelector('figcaption')?.textContent ?? '' })),
    );
    for (const s of svgText) {
      expect(s.title).toMatch(/\S/);
      expect(s.desc).toBe(s.caption);
      await expect(page.getByRole('img', { name: `${s.title}. ${s.caption}`, exact: true }).count()).resolves.toBe(1);
    }
    expect(await page.locator('table thead th[scope="col"]').count()).toBe(await page.locator('table thead th').count());
    expect(await page.locator('table caption').count()).toBe(1);

    // Readable in this scheme: body text and chart text at 4.5:1, data marks at 3:1 against the page.
    const colors = await page.$eval('body', (body) => {
      const view = body.ownerDocument.defaultView!;
      const style = (element: typeof body) => view.getComputedStyle(element);
      const text = body.querySelector('svg text');
      const fills = [...new Set([...body.querySelectorAll('g.role-mark > path')].map((p) => p.getAttribute('fill') ?? style(p).fill))].filter((f) => f !== 'none' && f !== 'transparent');
      return { fg: style(body).color, bg: style(body).backgroundColor, chartText: text === null ? null : style(text).fill, fills };
    });
    expect(contrast(colors.fg, colors.bg)).toBeGreaterThanOrEqual(4.5);
    if (colors.chartText !== null) expect(contrast(colors.chartText, colors.bg)).toBeGreaterThanOrEqual(4.5);
    for (const fill of colors.fills) expect(contrast(fill, colors.bg), `mark fill ${fill} on ${colors.bg}`).toBeGreaterThanOrEqual(3);
    const dark = contrast(colors.bg, '#000000') < contrast(colors.bg, '#ffffff');
    expect(dark).toBe(colorScheme === 'dark');

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, screenshot), fullPage: true });
    return marks;
  } finally {
    await page.close();
  }
}

const suiteName = `HTML report in headless chromium${hasChromium || inCi ? '' : ` (skipped: ${CHROMIUM} is not installed; apt-get install chromium, as .ci/run does)`}`;

describe.skipIf(!hasChromium && !inCi)(suiteName, { timeout: 180_000 }, () => {
  let browser: Browser;
  let dir: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    if (!hasChromium) throw new Error(`${CHROMIUM} is missing in CI: .ci/run installs the chromium package, so the HTML report test cannot be skipped there`);
    dir = await tempDirectory('report-html');
    // As root chromium's sandbox cannot start; an unprivileged user keeps it.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  });
  afterAll(async () => {
    await browser?.close();
    await dir?.remove();
  });

  it('the demo report: opens offline, every chart holds its marks, accessible in light and dark mode', async () => {
    const demoDir = path.join(dir.path, 'demo');
    const demo = await runCli(['demo', '--dir', demoDir, '--json'], {});
    expect(demo.code, demo.stderr).toBe(0);
    const summary = demo.json<{ htmlReport: string; final: { from: string; to: string } }>();
    expect(summary.htmlReport).toBe(path.join(demoDir, 'report.html'));
    const json = await runCli(['report', '--root', demoDir, '--from', summary.final.from, '--to', summary.final.to, '--stage', 'both', '--format', 'json'], {});
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Report;

    for (const scheme of ['light', 'dark'] as const) {
      const marks = await checkPage(browser, summary.htmlReport, report, scheme, `demo-report-${scheme}.png`);
      // Three models over two weeks, both stages: points for each, and a chart per segment key.
      expect(marks.get('mse-delivery-eta@v41')!.points).toBeGreaterThan(10);
      expect([...marks.keys()].filter((id) => id.startsWith('segments-')).length).toBeGreaterThanOrEqual(3);
    }
    if (report.maturity.length === 0) {
      const { page } = await visit(browser, summary.htmlReport, 'light');
      await expect(page.locator('section:has(h2:text-is("Label maturity")) p.empty').textContent()).resolves.toMatch(/^No label-age records in this range/);
      await page.close();
    }
  });

  it('a report with label-age records draws the maturity curve: coverage and MSE against label age per model version', async () => {
    const root = path.join(dir.path, 'maturity');
    const store = new LocalObjectStore(path.join(root, 'metrics'));
    const random = seededRandom(5);
    const ages = [3600, 6 * 3600, 86_400, 2 * 86_400];
    for (const date of ['2026-03-02', '2026-03-03']) {
      for (const stage of ['preliminary', 'final'] as const) {
        const records: Record<string, unknown>[] = [];
        for (const version of ['v1', 'v2']) {
          const rows = fixtureRows(random, 300, 20, version === 'v1' ? 3 : 2, stage === 'final' ? 0.9 : 0.6);
          records.push(recordOf(stage, date, { model: 'eta', version }, rows, true));
          // A preliminary at 6 h has label ages up to 6 h; the final all four.
          for (const age of ages.filter((a) => stage === 'final' || a <= 6 * 3600)) {
            const young = rows.map((r, i) => ({ ...r, y_true: i % Math.round(172_800 / age) === 0 ? r.y_true : null }));
            records.push(recordOf(stage, date, { model: 'eta', version, labelAgeRecord: age }, young, true));
          }
        }
        await writeMetricsPartition(store, stage, date, records, true);
      }
    }
    const out = path.join(root, 'report.html');
    const args = ['report', '--root', root, '--from', '2026-03-02', '--to', '2026-03-03', '--stage', 'both'];
    const html = await runCli([...args, '--format', 'html', '--out', out], {});
    expect(html.code, html.stderr).toBe(0);
    const json = await runCli([...args, '--format', 'json'], {});
    const report = JSON.parse(json.stdout) as Report;
    // Per version: four final ages and two preliminary ones.
    expect(report.maturity.filter((p) => p.version === 'v1').map((p) => `${p.stage} ${p.label_age_s}`)).toEqual(['final 3600', 'final 21600', 'final 86400', 'final 172800', 'preliminary 3600', 'preliminary 21600']);

    for (const scheme of ['light', 'dark'] as const) {
      const marks = await checkPage(browser, out, report, scheme, `maturity-report-${scheme}.png`);
      for (const version of ['v1', 'v2']) {
        expect(marks.get(`maturity-coverage-eta@${version}`)).toMatchObject({ points: 6, lines: 2 });
        expect(marks.get(`maturity-mse-eta@${version}`)).toMatchObject({ points: 6, rules: 6, lines: 2 });
      }
    }
  });
});
