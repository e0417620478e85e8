/**
 * The multi-day commands of the real CLI: `backfill` (several days at once, one bad day reported
 * without hiding the others), `scheduled` (the CronJob entry: yesterday's preliminary and every
 * final whose window closed, once) and `report` (table, csv, md, json; missing days named).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { metricsType } from '../../src/avro/schemas.js';
import { generateSample } from '../../src/demo/generate.js';
import type { ModelMetricsRecord } from '../../src/join/slices.js';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import type { Report } from '../../jobs/report.js';
import {
  type CliResult,
  type DatasetRoot,
  cliEnv,
  describeRun,
  localRoot,
  readBytes,
  readRecords,
  runCli,
  s3Root,
  tempDirectory,
  testClient,
} from '../helpers/cli.js';
import { createTestBucket } from '../helpers/s3rver.js';

const FROM = '2026-03-02';
const DAYS = ['2026-03-02', '2026-03-03', '2026-03-04'];
const VERSIONS = ['v41', 'v42', '2026.02.1'];

let endpoint: string;
let bucket: string;
let client: S3Client;

beforeAll(async () => {
  endpoint = inject('s3Endpoint');
  bucket = await createTestBucket(endpoint);
  client = testClient(endpoint);
});

afterAll(() => {
  client?.destroy();
});

async function cli(args: readonly string[]): Promise<CliResult> {
  const result = await runCli(args, cliEnv(endpoint));
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  return result;
}

async function seed(root: DatasetRoot): Promise<void> {
  await generateSample(root.store('predictions'), root.store('labels'), { from: FROM, days: DAYS.length, predictionsPerDay: 1200, filesPerDay: 3, seed: 5 });
}

describe('backfill (s3rver)', () => {
  let root: DatasetRoot;
  const badKey = `dt=${DAYS[1]}/hour=05/truncated.avro`;
  const args = (): string[] => ['backfill', '--from', DAYS[0]!, '--to', DAYS[2]!, '--stage', 'preliminary', '--as-of', '2026-03-05T06:00:00Z', '--concurrency', '2', '--json', ...root.args];

  beforeAll(async () => {
    root = s3Root(client, bucket, 'backfill', endpoint);
    await seed(root);
    const predictions = root.store('predictions');
    const [first] = await predictions.list(`dt=${DAYS[1]}/`);
    const bytes = await readBytes(predictions, first!.key);
    await predictions.write(badKey, bytes.subarray(0, bytes.length - 20));
  });

  it('reports each day; a day with a corrupt object fails (exit 1) and the others are committed', async () => {
    const result = await cli(args());
    expect(result.code, describeRun(result)).toBe(1);
    const outcomes = result.json<DayOutcome[]>();
    expect(outcomes.map((o) => [o.date, o.status])).toEqual([
      [DAYS[0], 'done'],
      [DAYS[1], 'failed'],
      [DAYS[2], 'done'],
    ]);
    expect(outcomes[1]).toMatchObject({ code: 'E_CORRUPT_OBJECT' });
    expect('error' in outcomes[1]! ? outcomes[1].error : '').toContain(badKey);
    expect(result.logs.find((l) => l.event === 'day_failed')).toMatchObject({ date: DAYS[1], code: 'E_CORRUPT_OBJECT' });
    for (const [i, date] of DAYS.entries()) {
      const committed = await root.store('metrics').head(`stage=preliminary/dt=${date}/_SUCCESS`);
      expect(committed !== undefined, date).toBe(i !== 1);
    }
    expect(await root.store('curated').list(`stage=preliminary/dt=${DAYS[1]}/`)).toEqual([]);
  });

  it('after the object is removed, a rerun computes the missing day and skips the others (exit 0)', async () => {
    await root.store('predictions').delete([badKey]);
    const result = await cli(args());
    expect(result.code, describeRun(result)).toBe(0);
    const outcomes = result.json<DayOutcome[]>();
    expect(outcomes.map((o) => [o.date, o.stage, o.status])).toEqual([
      [DAYS[0], 'preliminary', 'already_done'],
      [DAYS[1], 'preliminary', 'done'],
      [DAYS[2], 'preliminary', 'already_done'],
    ]);
    for (const outcome of outcomes) {
      expect('result' in outcome && outcome.result.predictions_kept).toBeGreaterThan(1000);
    }
    const human = await cli(args().filter((a) => a !== '--json'));
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('3 day(s): 0 done, 3 already done, 0 not ready, 0 failed');
  });
});

describe('scheduled and report (local folder)', () => {
  let root: DatasetRoot;
  let remove: () => Promise<void>;

  beforeAll(async () => {
    const directory = await tempDirectory('scheduled');
    remove = directory.remove;
    root = localRoot(directory.path);
    await seed(root);
  });

  afterAll(async () => {
    await remove?.();
  });

  /** With a one-day window, on 2026-03-05 at 06:00 the windows of 03-02 and 03-03 have closed, 03-04's has not. */
  const scheduled = (asOf: string): Promise<CliResult> => cli(['scheduled', '--as-of', asOf, '--label-window', 'P1D', '--json', ...root.args]);
  const plan = (outcomes: DayOutcome[]): Array<[string, string, string]> => outcomes.map((o) => [o.date, o.stage, o.status]);

  it('computes yesterday’s preliminary and every closed final, once', async () => {
    const first = await scheduled('2026-03-05T06:00:00Z');
    expect(first.code, describeRun(first)).toBe(0);
    expect(plan(first.json<DayOutcome[]>())).toEqual([
      ['2026-03-02', 'final', 'done'],
      ['2026-03-03', 'final', 'done'],
      ['2026-03-04', 'preliminary', 'done'],
    ]);
    expect(first.logs.find((l) => l.event === 'scheduled_plan')).toBeDefined();

    const second = await scheduled('2026-03-05T06:00:00Z');
    expect(second.code, describeRun(second)).toBe(0);
    const outcomes = second.json<DayOutcome[]>();
    expect(outcomes.filter((o) => o.stage === 'final')).toEqual([]);
    expect(plan(outcomes)).toEqual([['2026-03-04', 'preliminary', 'already_done']]);

    // A day later 03-04's window has closed too; yesterday (03-05) has no predictions partition: not
    // ready (SPEC §3), which a schedule reports without failing (its next run catches up).
    const third = await scheduled('2026-03-06T06:00:00Z');
    expect(third.code, describeRun(third)).toBe(0);
    const later = third.json<DayOutcome[]>();
    expect(plan(later)).toEqual([
      ['2026-03-04', 'final', 'done'],
      ['2026-03-05', 'preliminary', 'not_ready'],
    ]);
    expect(later[1]).toMatchObject({ code: 'E_NOT_READY' });
  });

  it('report prints the model versions per day, the roll-ups and the missing days', async () => {
    const range = ['--from', '2026-03-01', '--to', '2026-03-04', '--stage', 'final', ...root.args];
    const json = await cli(['report', ...range, '--format', 'json']);
    expect(json.code, describeRun(json)).toBe(0);
    const report = JSON.parse(json.stdout) as Report;
    expect(report).toMatchObject({ stage: 'final', from: '2026-03-01', to: '2026-03-04', missing: [{ date: '2026-03-01', stage: 'final' }] });
    const rows = report.rows.filter((r) => r.kind !== 'missing');
    expect(new Set(rows.map((r) => r.version))).toEqual(new Set(VERSIONS));
    // Every day's whole-version row matches the metrics file it was read from; the total adds the days.
    for (const date of DAYS) {
      const metrics = await readRecords<ModelMetricsRecord>(root.store('metrics'), `stage=final/dt=${date}/metrics.avro`, metricsType);
      // The day's own records (SPEC §5.1: label-age records carry label_age_s).
      for (const whole of metrics.filter((m) => Object.keys(m.slice_keys).length === 0 && m.label_age_s === null)) {
        const row = rows.find((r) => r.window === date && r.version === whole.model_version)!;
        expect(row).toMatchObject({ model: whole.model_name, count: whole.count, labeled: whole.labeled_count });
        expect(row.mse).toBeCloseTo(whole.mse!, 12);
      }
    }
    for (const version of VERSIONS) {
      const ofVersion = rows.filter((r) => r.version === version);
      const total = ofVersion.find((r) => r.kind === 'range')!;
      expect(total.window).toBe('total');
      expect(total.count).toBe(ofVersion.filter((r) => r !== total).reduce((n, r) => n + r.count!, 0));
      expect(ofVersion).toHaveLength(DAYS.length + 1);
    }

    const table = await cli(['report', ...range]);
    expect(table.code).toBe(0);
    for (const version of VERSIONS) expect(table.stdout).toContain(version);
    expect(table.stdout).toContain('final metrics by day, 2026-03-01 .. 2026-03-04');
    expect(table.stdout).toContain('no committed final metrics for 1 day(s): 2026-03-01');

    // CSV: the JSON keys as headers, one line per row, the missing day included.
    const csv = await cli(['report', ...range, '--format', 'csv']);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trimEnd().split('\r\n').map((line) => line.split(','));
    expect(lines[0]).toEqual(Object.keys(report.rows[0]!));
    expect(lines).toHaveLength(report.rows.length + 1);
    for (const [i, row] of report.rows.entries()) {
      const cells = Object.fromEntries(lines[0]!.map((h, j) => [h, lines[i + 1]![j]]));
      expect([cells.kind, cells.model, cells.version, cells.window]).toEqual([row.kind, row.model ?? '', row.version ?? '', row.window]);
      expect(cells.mse === '' ? null : Number(cells.mse)).toBe(row.mse);
    }

    const md = await cli(['report', ...range, '--format', 'md']);
    expect(md.code).toBe(0);
    const mdLines = md.stdout.trimEnd().split('\n');
    expect(mdLines[0]).toBe('**final metrics by day, 2026-03-01 .. 2026-03-04**');
    expect(mdLines[2]).toMatch(/^From file:\/\/.*\/metrics\.$/);
    const tableLines = mdLines.filter((line) => line.startsWith('|'));
    expect(tableLines).toHaveLength(rows.length + 2);
    expect(tableLines[1]).toMatch(/^\| --- \| --- \| --- \| --- \|/);
    for (const line of tableLines) expect(line.split(/(?<!\\)\|/).length).toBe(Object.keys(report.rows[0]!).length + 2);
    expect(md.stdout).toContain('\n\n- no committed final metrics for 1 day(s): 2026-03-01');

    const preliminary = await cli(['report', '--from', '2026-03-04', '--to', '2026-03-05', '--stage', 'preliminary', '--format', 'json', ...root.args]);
    // 03-05 has no predictions partition: its preliminary was not ready, so nothing was committed.
    expect(JSON.parse(preliminary.stdout)).toMatchObject({ stage: 'preliminary', missing: [{ date: '2026-03-05', stage: 'preliminary' }] });
  });
});
