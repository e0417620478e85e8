/**
 * `report` over committed metrics partitions on local disk (SPEC §7): roll-ups against a direct
 * computation over the same rows (property test), v1 and v2-shaped partitions mixed, restatements,
 * notes, every format carrying the same fields, and each bad input with its error code.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '../../src/calendar.js';
import { renderAny } from '../../jobs/report.js';
import { csvHeader, renderReport } from '../../src/cli/report-view.js';
import { Z_95 } from '../../src/metrics/formulas.js';
import { MIXED_ROLLUP_NOTE, type Report, type ReportRequest, buildReport } from '../../src/report/build.js';
import { windowOf } from '../../src/report/rollup.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { runCli, tempDirectory } from '../helpers/cli.js';
import { type FixtureRow, fixtureRows, recordOf, seededRandom, writeMetricsPartition } from '../helpers/metrics-fixture.js';

/** Metrics straight from rows, two-pass in doubles: the reference a roll-up must match. */
function direct(rows: readonly FixtureRow[]): { count: number; labeled: number; mse: number; mae: number; mse_ci_high: number; mae_ci_high: number; r2: number } {
  const labeled = rows.filter((r) => r.y_true !== null) as Array<{ y_true: number; y_pred: number }>;
  const n = labeled.length;
  const sq = labeled.map((r) => (r.y_true - r.y_pred) ** 2);
  const abs = labeled.map((r) => Math.abs(r.y_true - r.y_pred));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs: number[]): number => {
    const m = mean(xs);
    return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
  };
  const yMean = mean(labeled.map((r) => r.y_true));
  const ssTot = labeled.reduce((a, r) => a + (r.y_true - yMean) ** 2, 0);
  return { count: rows.length, labeled: n, mse: mean(sq), mae: mean(abs), mse_ci_high: mean(sq) + (Z_95 * sd(sq)) / Math.sqrt(n), mae_ci_high: mean(abs) + (Z_95 * sd(abs)) / Math.sqrt(n), r2: 1 - sq.reduce((a, b) => a + b, 0) / ssTot };
}

const relativeClose = (actual: number | null, expected: number): void => {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected) / Math.max(Math.abs(expected), 1e-300)).toBeLessThan(1e-9);
};

describe('report roll-ups', () => {
  let dir: { path: string; remove: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDirectory('report-rollup');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('equal a direct computation over the same rows, for any days, slices and grain (property)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.integer(), days: fc.integer({ min: 1, max: 40 }), start: fc.integer({ min: 0, max: 360 }), by: fc.constantFrom('day' as const, 'week' as const, 'month' as const), v2: fc.boolean(), level: fc.constantFrom(10, 1e6) }),
        async ({ seed, days, start, by, v2, level }) => {
          const store = new LocalObjectStore(path.join(dir.path, `p${run++}`));
          const random = seededRandom(seed);
          const from = addDays('2025-01-01', start);
          const rows = new Map<string, FixtureRow[]>(); // date|slice → rows
          for (let d = 0; d < days; d++) {
            const date = addDays(from, d);
            if (d > 0 && random() < 0.15) continue; // a missing day
            const eu = fixtureRows(random, 20 + Math.floor(random() * 30), level, 1 + random(), 0.6 + random() * 0.4);
            const us = fixtureRows(random, 20 + Math.floor(random() * 30), level, 2 + random(), 0.6 + random() * 0.4);
            rows.set(`${date}|region=eu`, eu);
            rows.set(`${date}|region=us`, us);
            rows.set(`${date}|all`, [...eu, ...us]);
            const slices: Array<Record<string, string>> = [{}, { region: 'eu' }, { region: 'us' }];
            const records = slices.map((s) => recordOf('final', date, { model: 'm', version: 'v1', slice: s }, rows.get(`${date}|${s.region === undefined ? 'all' : `region=${s.region}`}`)!, v2));
            await writeMetricsPartition(store, 'final', date, records, v2);
          }
          const to = addDays(from, days - 1);
          for (const slice of [undefined, { key: 'region' }] as const) {
            const report = await buildReport(store, { from, to, stage: 'final', by, ...(slice === undefined ? {} : { slice }) });
            for (const row of report.rows.filter((r) => r.kind !== 'missing')) {
              const inWindow = [...rows.entries()].filter(([id]) => {
                const [date, s] = id.split('|') as [string, string];
                const w = windowOf(date, by);
                return s === row.slice && (row.kind === 'range' || w.label === row.window);
              });
              const expected = direct(inWindow.flatMap(([, r]) => r));
              expect(row.count).toBe(expected.count);
              expect(row.labeled).toBe(expected.labeled);
              relativeClose(row.mse, expected.mse);
              relativeClose(row.mae, expected.mae);
              relativeClose(row.mse_ci_high, expected.mse_ci_high);
              relativeClose(row.mae_ci_high, expected.mae_ci_high);
              // With y ≈ 1e6 a v1 record's once-rounded Σy² leaves R² only a few digits (SPEC §5.1 is why v2 adds the pairs).
              if (v2 || level === 10) relativeClose(row.r2, expected.r2);
              expect(row.days).toBe(new Set(inWindow.map(([id]) => id.split('|')[0])).size);
            }
            const totals = report.rows.filter((r) => r.kind === 'range');
            const windows = new Set(report.rows.filter((r) => r.kind === 'window').map((r) => r.window));
            // A total only where the range spans more than one window: a one-day range does not repeat its row.
            expect(totals.length > 0).toBe(windows.size > 1);
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});

describe('report content and formats', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let store: LocalObjectStore;
  const request: ReportRequest = { from: '2026-03-01', to: '2026-03-06', stage: 'both', by: 'day' };
  let report: Report;

  beforeAll(async () => {
    dir = await tempDirectory('report-content');
    store = new LocalObjectStore(path.join(dir.path, 'metrics'));
    const random = seededRandom(7);
    // 03-01 and 03-04 have nothing; v2 appears on 03-03; 03-06 is preliminary only; 03-05 is a v2-shaped file with label-age records.
    for (const date of ['2026-03-02', '2026-03-03', '2026-03-05', '2026-03-06']) {
      const v2File = date >= '2026-03-05';
      for (const stage of ['preliminary', 'final'] as const) {
        if (stage === 'final' && date === '2026-03-06') continue;
        const records: Record<string, unknown>[] = [];
        for (const version of date >= '2026-03-03' ? ['v1', 'v2'] : ['v1']) {
          const coverage = stage === 'final' ? 0.9 : date === '2026-03-05' ? 0.3 : 0.6;
          const rows = fixtureRows(random, 400, 20, version === 'v1' ? 3 : 2, coverage);
          records.push(recordOf(stage, date, { model: 'eta', version, delayP95S: date === '2026-03-05' ? 40_000 : 7200 }, rows, v2File));
          records.push(recordOf(stage, date, { model: 'eta', version, slice: { region: 'eu' } }, rows.slice(0, 200), v2File));
          records.push(recordOf(stage, date, { model: 'eta', version, slice: { region: 'us' } }, rows.slice(200), v2File));
          if (v2File) {
            // Two hourly records (--windows PT1H) of the first rows: not day rows.
            for (const hour of [0, 1]) records.push(recordOf(stage, date, { model: 'eta', version, hour }, rows.slice(hour * 50, hour * 50 + 50), true));
            for (const age of [3600, 6 * 3600, 86_400]) {
              const young = rows.map((r, i) => ({ ...r, y_true: i % Math.round(86_400 / age + 1) === 0 ? r.y_true : null }));
              records.push(recordOf(stage, date, { model: 'eta', version, labelAgeRecord: age }, young, true));
            }
          }
        }
        await writeMetricsPartition(store, stage, date, records, v2File);
      }
    }
    report = await buildReport(store, request);
  });
  afterAll(async () => {
    await dir?.remove();
  });

  it('lists the missing days of each stage, as rows and apart', () => {
    expect(report.missing).toEqual([
      { date: '2026-03-01', stage: 'final' },
      { date: '2026-03-01', stage: 'preliminary' },
      { date: '2026-03-04', stage: 'final' },
      { date: '2026-03-04', stage: 'preliminary' },
      { date: '2026-03-06', stage: 'final' },
    ]);
    expect(report.rows.filter((r) => r.kind === 'missing').map((r) => `${r.window} ${r.stage}`)).toHaveLength(5);
  });

  it('notes a new version, coverage and delay moves, preliminary-only days and restatements', () => {
    const row = (version: string, window: string, stage: string) => report.rows.find((r) => r.version === version && r.window === window && r.stage === stage && r.slice === 'all')!;
    expect(row('v2', '2026-03-03', 'final').notes).toContain('first day of v2: 2026-03-03');
    expect(row('v1', '2026-03-02', 'final').notes.some((n) => n.startsWith('first day'))).toBe(false);
    expect(row('v1', '2026-03-05', 'preliminary').notes.find((n) => n.startsWith('coverage'))).toMatch(/^coverage 6\d\.\d% → [23]\d\.\d% \(−\d\d\.\d pp\)$/);
    expect(row('v1', '2026-03-05', 'final').notes).toContain('label delay p95 2.0 h → 11.1 h');
    expect(row('v1', '2026-03-06', 'preliminary').notes).toContain('preliminary only: labels through 6.0 h after the day');
    const final = row('v1', '2026-03-02', 'final');
    const preliminary = row('v1', '2026-03-02', 'preliminary');
    expect(final.restated_mse_delta).toBeCloseTo(final.mse! - preliminary.mse!, 12);
    expect(final.preliminary_ci_covers_final).toBe(preliminary.mse_ci_low! <= final.mse! && final.mse! <= preliminary.mse_ci_high!);
    expect(final.notes.find((n) => n.startsWith('restated'))).toMatch(/^restated: MSE \d+\.\d+ → \d+\.\d+, Δ [+−][\d.]+ \([+−][\d.]+%\), (within|outside) the preliminary's CI$/);
  });

  it('rolls the v2-shaped label-age records into maturity points and keeps them out of the rows', () => {
    expect(report.rows.filter((r) => r.kind !== 'missing').every((r) => r.label_age_s === null || r.stage === 'preliminary')).toBe(true);
    const points = report.maturity.filter((p) => p.version === 'v1' && p.stage === 'final');
    expect(points.map((p) => p.label_age_s)).toEqual([3600, 21600, 86400]);
    expect(points.every((p) => p.days === 1)).toBe(true);
    expect(points[0]!.coverage!).toBeLessThan(points[2]!.coverage!);
  });

  it('reads v1 and v2 partitions as one dataset and says so, with a note on each roll-up mixing them', async () => {
    expect(report.notes[0]).toBe(
      'metrics v1 and v2 partitions mixed: v1 (sums rounded once, no label-age records) for 2026-03-02..2026-03-03, v2 for 2026-03-05..2026-03-06; roll-ups over both are exact only to the v1 rounding, and the label maturity curve covers the v2 days alone',
    );
    const total = report.rows.find((r) => r.kind === 'range' && r.version === 'v1' && r.stage === 'final' && r.slice === 'all')!;
    expect(total.days).toBe(3);
    expect(total.notes).toContain(MIXED_ROLLUP_NOTE);
    // A day row reads one file, so it mixes nothing; a range of v2 days alone has no such note.
    expect(report.rows.filter((r) => r.kind === 'window').some((r) => r.notes.includes(MIXED_ROLLUP_NOTE))).toBe(false);
    const v2Only = await buildReport(store, { ...request, from: '2026-03-05' });
    expect(v2Only.notes.some((n) => n.startsWith('metrics v1 and v2'))).toBe(false);
    expect(v2Only.rows.some((r) => r.notes.includes(MIXED_ROLLUP_NOTE))).toBe(false);
    // The terminal wraps it at 100 columns.
    for (const format of ['table', 'md'] as const) expect(renderReport(report, format).replace(/\s+/g, ' ')).toContain(report.notes[0]);
  });

  it('keeps hourly records out of the day rows and says how many it left out', () => {
    const day = report.rows.find((r) => r.window === '2026-03-05' && r.version === 'v1' && r.stage === 'final' && r.slice === 'all')!;
    expect(day.count).toBe(400);
    expect(report.rows.filter((r) => r.window === '2026-03-05' && r.version === 'v1' && r.stage === 'final' && r.slice === 'all')).toHaveLength(1);
    // 2 hours × 2 versions × (2 stages on 03-05 + 1 on 03-06).
    expect(report.notes).toContain('12 hourly record(s) (--windows PT1H) are not day rows and are left out of this report');
  });

  it('draws the maturity curve in html from the label-age records, and says so where a range has none (v1 days)', async () => {
    const withCurve = await renderAny(report, 'html');
    expect(withCurve.match(/<figure data-chart="maturity-(coverage|mse)-eta@v[12]"/g)).toHaveLength(4);
    // Drawing leaves the report as built (Vega tags the objects it draws; it gets copies).
    for (const row of [...report.rows, ...report.segment_rows]) expect(Object.getOwnPropertySymbols(row)).toEqual([]);
    const v1Only = await buildReport(store, { ...request, to: '2026-03-03' });
    expect(v1Only.maturity).toEqual([]);
    const html = await renderAny(v1Only, 'html');
    expect(html).not.toContain('data-chart="maturity-');
    expect(html).toMatch(/<h2>Label maturity<\/h2><p class="empty">No label-age records in this range, so there is no maturity curve: metrics v1 partitions carry none;/);
    expect(JSON.parse(renderReport(v1Only, 'json')).maturity).toEqual([]);
  });

  it('carries the same fields under the same names in csv and json, missing days included', () => {
    const csv = renderReport(report, 'csv').split('\r\n');
    expect(csv[0]!.split(',')).toEqual(csvHeader);
    expect(csvHeader).toEqual(Object.keys(report.rows[0]!));
    expect(csv).toHaveLength(report.rows.length + 1);
    expect(csv.filter((l) => l.startsWith('missing,'))).toHaveLength(5);
    const json = JSON.parse(renderReport(report, 'json')) as Report;
    expect(json.rows).toEqual(report.rows);
  });

  it('writes Markdown whose missing-day list is not a table row, and a table that fits 100 columns', () => {
    const md = renderReport(report, 'md').split('\n');
    const missingAt = md.findIndex((l) => l.startsWith('- no committed'));
    expect(missingAt).toBeGreaterThan(0);
    // The report-wide notes, then the missing days: one list after a blank line that ends the table.
    expect(md.slice(missingAt - report.notes.length - 1, missingAt)).toEqual(['', ...report.notes.map((n) => `- ${n}`)]);
    expect(md.slice(missingAt)).toEqual(['- no committed preliminary metrics for 2 day(s): 2026-03-01, 2026-03-04', '- no committed final metrics for 3 day(s): 2026-03-01, 2026-03-04, 2026-03-06']);
    const header = md.find((l) => l.startsWith('| kind'))!;
    expect(header.split(' | ').map((h) => h.replace(/^\| |\s*\|$/g, ''))).toEqual(csvHeader);
    const table = renderReport(report, 'table').split('\n');
    const body = table.slice(2); // after the title and the metrics URI
    expect(Math.max(...body.map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(body.join(' ')).toMatch(/left out to fit 100 columns: [^(]*mape/);
    expect(body).toContain('(--format md, csv or json has every field)');
  });

  it('writes every number of a column with the same significant digits', () => {
    const table = renderReport(report, 'table').split('\n');
    const header = table[2]!;
    const mseStart = header.indexOf('mse');
    expect(mseStart).toBeGreaterThan(0);
    const cells = table.slice(3).filter((l) => l.startsWith('eta')).map((l) => l.slice(0, header.length).match(/(\d[\d,]*\.\d+) ±/)?.[1]).filter((x) => x !== undefined);
    expect(cells.length).toBeGreaterThan(5);
    for (const cell of cells) expect(cell!.replace(/[,.]/g, '').replace(/^0+/, '')).toHaveLength(4);
  });

  it('reports the slices of --slice KEY and of --slice KEY=VALUE, and one model version of --model', async () => {
    const bySlice = await buildReport(store, { ...request, slice: { key: 'region' } });
    expect(new Set(bySlice.rows.filter((r) => r.kind !== 'missing').map((r) => r.slice))).toEqual(new Set(['region=eu', 'region=us']));
    const one = await buildReport(store, { ...request, slice: { key: 'region', value: 'eu' }, model: { name: 'eta', version: 'v2' } });
    expect(new Set(one.rows.filter((r) => r.kind !== 'missing').map((r) => `${r.version} ${r.slice}`))).toEqual(new Set(['v2 region=eu']));
  });
});

describe('report bad input', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let root: string;
  beforeAll(async () => {
    dir = await tempDirectory('report-bad');
    root = dir.path;
    const store = new LocalObjectStore(path.join(root, 'metrics'));
    const rows = fixtureRows(seededRandom(1), 50, 10, 1, 0.8);
    await writeMetricsPartition(store, 'final', '2026-03-02', [recordOf('final', '2026-03-02', { model: 'eta', version: 'v1' }, rows, false)], false);
    const broken = recordOf('final', '2026-03-03', { model: 'eta', version: 'v1' }, rows, false);
    broken.labeled_count = -3;
    await writeMetricsPartition(store, 'final', '2026-03-03', [broken], false);
  });
  afterAll(async () => {
    await dir?.remove();
  });

  const report = (args: string[]) => runCli(['report', '--root', root, '--json', ...args], {});

  it('a range without committed metrics is exit 1 naming the metrics URI and the range', async () => {
    const result = await report(['--from', '2026-01-01', '--to', '2026-01-31']);
    expect(result.code).toBe(1);
    const summary = result.json<{ code: string; message: string; uri: string }>();
    expect(summary.code).toBe('E_NOT_FOUND');
    expect(summary.message).toContain(`file://${path.join(root, 'metrics')}`);
    expect(summary.message).toContain('2026-01-01..2026-01-31');
  });

  it('a negative count is E_CORRUPT_OBJECT naming the object and the field', async () => {
    const result = await report(['--from', '2026-03-02', '--to', '2026-03-03']);
    expect(result.code).toBe(1);
    const summary = result.json<{ code: string; message: string; field: string; uri: string }>();
    expect(summary).toMatchObject({ code: 'E_CORRUPT_OBJECT', field: 'labeled_count' });
    expect(summary.uri).toMatch(/stage=final\/dt=2026-03-03\/metrics\.avro$/);
  });

  it.each([
    ['--by quarter', ['--by', 'quarter'], '--by'],
    ['--stage all', ['--stage', 'all'], '--stage'],
    ['--slice =eu', ['--slice', '=eu'], '--slice'],
    ['--slice region=', ['--slice', 'region='], '--slice'],
    ['--model @v1', ['--model', '@v1'], '--model'],
    ['unknown --model', ['--model', 'nope'], '--model'],
    ['unknown --slice', ['--slice', 'device'], '--slice'],
    ['--format html without --out', ['--format', 'html'], '--out'],
    ['--out in a missing folder', ['--out', '/nonexistent-folder/report.md'], '--out'],
    ['--out a folder', ['--out', '/tmp'], '--out'],
    ['--slice-keys (a job option)', ['--slice-keys', 'region'], '--slice-keys'],
  ])('%s is exit 2 naming the option', async (_name, args, option) => {
    const result = await report(['--from', '2026-03-02', '--to', '2026-03-02', ...args]);
    expect(result.code, result.stdout).toBe(2);
    expect(result.json<{ code: string; option: string }>()).toMatchObject({ code: 'E_USAGE', option });
  });

  describe('--out to a place that cannot take the report is exit 2 naming --out, and leaves nothing behind', () => {
    const outError = async (out: string): Promise<string> => {
      const result = await report(['--from', '2026-03-02', '--to', '2026-03-02', '--format', 'md', '--out', out]);
      expect(result.code, result.stdout).toBe(2);
      const summary = result.json<{ code: string; option: string; message: string }>();
      expect(summary).toMatchObject({ code: 'E_USAGE', option: '--out' });
      expect(summary.message.startsWith(`--out ${out}: `)).toBe(true);
      return summary.message;
    };

    it('a path through a file', async () => {
      const file = path.join(root, 'plain-file');
      fs.writeFileSync(file, 'x');
      expect(await outError(path.join(file, 'report.md'))).toContain(`${file} is not a folder (ENOTDIR)`);
      expect(fs.readFileSync(file, 'utf8')).toBe('x');
    });

    it('a named pipe (a special file the atomic rename would replace)', async () => {
      const fifo = path.join(root, 'pipe');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      expect(await outError(fifo)).toContain('is a named pipe');
      expect(fs.statSync(fifo).isFIFO()).toBe(true);
    });

    it('a folder that refuses the write (/proc)', async () => {
      // As root the permission check passes and the write itself fails (ENOENT); otherwise the check refuses.
      expect(await outError('/proc/report.md')).toMatch(/cannot write (the report|into \/proc) \((ENOENT|EACCES)\)/);
    });

    it('a read-only folder (as root, who passes permission checks: /sys, where creating a file is refused)', async () => {
      if (process.getuid?.() === 0) {
        expect(await outError('/sys/report.md')).toMatch(/cannot write (the report|into \/sys) \((EACCES|EROFS|EPERM)\)/);
        expect(fs.existsSync('/sys/report.md')).toBe(false);
        return;
      }
      const folder = path.join(root, 'read-only');
      fs.mkdirSync(folder, { mode: 0o555 });
      expect(await outError(path.join(folder, 'report.md'))).toContain(`cannot write into ${folder} (EACCES)`);
      expect(fs.readdirSync(folder)).toEqual([]);
    });
  });

  it('--out through a symbolic link replaces the file it points to and keeps the link', async () => {
    const target = path.join(root, 'target.md');
    const link = path.join(root, 'link.md');
    fs.writeFileSync(target, 'old');
    fs.symlinkSync(target, link);
    const result = await runCli(['report', '--root', root, '--from', '2026-03-02', '--to', '2026-03-02', '--format', 'md', '--out', link], {});
    expect(result.code, result.stderr).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toMatch(/^\*\*final metrics by day/);
  });

  it('--out writes the file whole and says where', async () => {
    const out = path.join(root, 'report.csv');
    const result = await runCli(['report', '--root', root, '--from', '2026-03-02', '--to', '2026-03-02', '--format', 'csv', '--out', out], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`report written to ${out}\n`);
    expect(fs.readFileSync(out, 'utf8').split('\r\n')[0]).toBe(csvHeader.join(','));
    expect(fs.readdirSync(root).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
