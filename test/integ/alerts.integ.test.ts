/**
 * Alerts end to end through the real CLI on local folders (SPEC §8): a seeded drift in one segment
 * of one model, a final backfill whose alerts do not depend on --concurrency, the alerts files
 * committed with each day (header-only when none fired), reruns byte-identical, `event: alert`
 * logs, exit 4 with --fail-on-alert, the bad cases of the alert options, and preliminary runs
 * compared at equal label age with finals that hold label-age records (metrics v2, SPEC §5.1).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Type } from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import { alertType, loadSchemaVersion, metricsType } from '../../src/avro/schemas.js';
import { type AlertRecord, type BaselineDay, evaluateAlerts } from '../../src/alerts/policy.js';
import { resolveAlertConfig } from '../../src/alerts/settings.js';
import type { DayAlerts } from '../../src/alerts/step.js';
import { addDays } from '../../src/calendar.js';
import { AvroFilesWriter } from '../../src/dataset/avro-writer.js';
import { type Manifest, serializeManifest } from '../../src/dataset/manifest.js';
import { generateSample } from '../../src/demo/generate.js';
import { dayWindow } from '../../src/join/policy.js';
import type { ModelMetricsRecord } from '../../src/join/slices.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { type CliResult, type DatasetRoot, cliEnv, describeRun, localRoot, readBytes, readManifest, readRecords, runCli, tempDirectory } from '../helpers/cli.js';

const FROM = '2026-03-02';
const DAYS = 14;
const DRIFT_DAY = 11;
const TO = addDays(FROM, DAYS - 1);
const DATES = Array.from({ length: DAYS }, (_, d) => addDays(FROM, d));
const AS_OF = '2026-03-30T00:00:00Z';
// k = 4: about a hundred slice-metrics are compared a day, so k = 3 would raise the odd chance alert.
const ALERT_ARGS = ['--baseline-days', '10', '--baseline-min-days', '8', '--alert-min-labeled', '100', '--alert-sigma', '4'];

async function cli(args: readonly string[]): Promise<CliResult> {
  const result = await runCli(args, cliEnv('http://127.0.0.1:9'));
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  return result;
}

async function seededRoot(path: string): Promise<DatasetRoot> {
  const root = localRoot(path);
  await generateSample(root.store('predictions'), root.store('labels'), {
    from: FROM,
    days: DAYS,
    predictionsPerDay: 4000,
    filesPerDay: 2,
    seed: 8,
    drift: { model: 'delivery-eta', segmentKey: 'region', segmentValue: 'eu-west', fromDay: DRIFT_DAY, noiseFactor: 2.5 },
  });
  return root;
}

const alertsStore = (root: DatasetRoot): LocalObjectStore => new LocalObjectStore(join(root.uri, 'alerts'));
const alertsKey = (date: string): string => `stage=final/dt=${date}/alerts.avro`;

describe('alerts of a final backfill (local folders)', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let parallel: DatasetRoot;
  let serial: DatasetRoot;
  let first: CliResult;

  beforeAll(async () => {
    const a = await tempDirectory('alerts-a');
    const b = await tempDirectory('alerts-b');
    dirs.push(a, b);
    [parallel, serial] = await Promise.all([seededRoot(a.path), seededRoot(b.path)]);
    first = await cli(['backfill', '--from', FROM, '--to', TO, '--stage', 'final', '--as-of', AS_OF, '--concurrency', '4', '--fail-on-alert', '--json', ...ALERT_ARGS, ...parallel.args]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('the seeded drift fires alerts on its days only, in its model, and --fail-on-alert exits 4 after the commit', async () => {
    expect(first.code, describeRun(first)).toBe(4);
    const outcomes = first.json<DayOutcome[]>();
    expect(outcomes.map((o) => o.status)).toEqual(DATES.map(() => 'done'));
    const alerts = outcomes.flatMap((o) => ('result' in o ? o.result.alerts!.alerts : []));
    expect(alerts.length).toBeGreaterThan(0);
    for (const alert of alerts) {
      expect(alert.model_name).toBe('delivery-eta');
      expect(DATES.indexOf(new Date(alert.window_start_ts / 1000).toISOString().slice(0, 10)), alert.message).toBeGreaterThanOrEqual(DRIFT_DAY);
    }
    expect(alerts.some((a) => a.slice_keys.region === 'eu-west' && a.metric === 'mse' && a.rule === 'sigma')).toBe(true);
    // The first days have too short a baseline: skipped with their reason, never alerted.
    const day0 = outcomes[0]!;
    expect('result' in day0 && day0.result.alerts).toMatchObject({ fired: 0, compared: 0, baseline_days_found: 0 });
    expect('result' in day0 && day0.result.alerts!.skipped.too_few_baseline_days).toBeGreaterThan(0);
    const logged = first.logs.filter((l) => l.event === 'alert');
    expect(logged.length).toBe(alerts.length);
    expect(logged[0]).toMatchObject({ level: 'warn', model_name: 'delivery-eta', metric: expect.any(String), rule: expect.any(String) });
  });

  it('each day commits alerts.avro with its _SUCCESS (header-only when none fired)', async () => {
    const store = alertsStore(parallel);
    const outcomes = first.json<DayOutcome[]>();
    for (const [index, date] of DATES.entries()) {
      const manifest = await readManifest(store, `stage=final/dt=${date}/_SUCCESS`);
      expect(manifest, date).toBeDefined();
      expect((manifest as unknown as { dataset: string }).dataset).toBe('alerts');
      const records = await readRecords<AlertRecord>(store, alertsKey(date), alertType);
      const outcome = outcomes[index]!;
      expect(records).toEqual('result' in outcome ? outcome.result.alerts!.alerts : []);
      expect(manifest!.outputs).toEqual([expect.objectContaining({ key: alertsKey(date), records: records.length })]);
    }
  });

  it('the alerts do not depend on --concurrency, and a rerun is already done with the same bytes and exit 4', async () => {
    const one = await cli(['backfill', '--from', FROM, '--to', TO, '--stage', 'final', '--as-of', AS_OF, '--concurrency', '1', '--json', ...ALERT_ARGS, ...serial.args]);
    expect(one.code, describeRun(one)).toBe(0);
    for (const date of DATES) expect((await readBytes(alertsStore(serial), alertsKey(date))).equals(await readBytes(alertsStore(parallel), alertsKey(date))), date).toBe(true);
    const before = await Promise.all(DATES.map((date) => readBytes(alertsStore(parallel), alertsKey(date))));
    const rerun = await cli(['backfill', '--from', FROM, '--to', TO, '--stage', 'final', '--as-of', AS_OF, '--concurrency', '3', '--fail-on-alert', '--json', ...ALERT_ARGS, ...parallel.args]);
    expect(rerun.code, describeRun(rerun)).toBe(4);
    expect(rerun.json<DayOutcome[]>().map((o) => o.status)).toEqual(DATES.map(() => 'already_done'));
    const after = await Promise.all(DATES.map((date) => readBytes(alertsStore(parallel), alertsKey(date))));
    expect(after.every((bytes, i) => bytes.equals(before[i]!))).toBe(true);
  }, 240_000);

  it('a rule change recomputes: with pct off and sigma off nothing fires, and the run exits 0 despite --fail-on-alert', async () => {
    const last = DATES.at(-1)!;
    const run = await cli(['run', '--date', last, '--stage', 'final', '--as-of', AS_OF, ...ALERT_ARGS, '--alert-sigma', 'off', '--fail-on-alert', '--json', ...serial.args]);
    expect(run.code, describeRun(run)).toBe(0);
    expect(run.json<{ status: string; alerts: { fired: number } }>()).toMatchObject({ status: 'done', alerts: { fired: 0 } });
    expect(await readRecords(alertsStore(serial), alertsKey(last), alertType)).toEqual([]);
  }, 120_000);

  it('bad alert options and config: exit 2, nothing published', async () => {
    const last = DATES.at(-1)!;
    const base = ['run', '--date', last, '--stage', 'final', '--as-of', AS_OF, '--force', '--json', ...serial.args];
    const cases: Array<[string[], RegExp]> = [
      [['--alert-sigma', '-1'], /--alert-sigma: must not be negative/],
      [['--alert-pct', 'lots'], /--alert-pct: expected a number or off/],
      [['--baseline-days', '1'], /--baseline-days must be a whole number from 2/],
      [['--baseline-min-days', '20'], /--baseline-min-days 20 exceeds --baseline-days 14/],
      [['--alert-min-labeled', '0'], /--alert-min-labeled must be a whole number from 1/],
      [['--alerts', '{models: {m: {zscore: 2}}}'], /unknown rule "zscore"/],
      [['--alerts-dataset', join(serial.uri, 'metrics')], /--alerts-dataset .* is the metrics dataset/],
      [['--alerts-dataset', 'ftp://x/y'], /unsupported scheme/],
    ];
    for (const [extra, message] of cases) {
      const result = await cli([...base, ...extra]);
      expect(result.code, `${extra.join(' ')}\n${describeRun(result)}`).toBe(2);
      expect(result.json<{ message: string }>().message).toMatch(message);
    }
    // A model in the rules that exists nowhere: found once the day is computed, before anything is published.
    const config = join(serial.uri, 'alerts-config.yaml');
    await writeFile(config, 'alerts:\n  models:\n    delivery-etaa: {sigma: 2}\n');
    const manifestBefore = await readBytes(alertsStore(serial), `stage=final/dt=${last}/_SUCCESS`);
    const typo = await cli([...base, '--config', config]);
    expect(typo.code, describeRun(typo)).toBe(2);
    expect(typo.json<{ message: string }>().message).toMatch(/alerts\.models names "delivery-etaa", not among the models .*delivery-eta/);
    expect((await readBytes(alertsStore(serial), `stage=final/dt=${last}/_SUCCESS`)).equals(manifestBefore)).toBe(true);
    // A negative k in the file.
    await writeFile(config, 'alerts:\n  default: {sigma: -3}\n');
    const negative = await cli([...base, '--config', config]);
    expect(negative.code, describeRun(negative)).toBe(2);
    expect(negative.json<{ message: string }>().message).toMatch(/alerts\.default\.sigma: must not be negative, got -3/);
  }, 240_000);
});

describe('demo', () => {
  it('seeds a drift in one segment of one model over its last days, and the finals of those days alert on it', async () => {
    const dir = await tempDirectory('alerts-demo');
    try {
      const result = await cli(['demo', '--dir', dir.path, '--json']);
      expect(result.code, describeRun(result)).toBe(0);
      const summary = result.json<{ drift: { model: string; segmentKey: string; segmentValue: string; from: string }; alerts: AlertRecord[] }>();
      expect(summary.drift).toMatchObject({ model: 'delivery-eta', segmentKey: 'region', segmentValue: 'eu-west' });
      expect(summary.alerts.length).toBeGreaterThan(0);
      for (const alert of summary.alerts) {
        expect(alert.model_name, alert.message).toBe(summary.drift.model);
        expect(new Date(alert.window_start_ts / 1000).toISOString().slice(0, 10) >= summary.drift.from, alert.message).toBe(true);
      }
      expect(summary.alerts.some((a) => a.slice_keys.region === 'eu-west')).toBe(true);
      const human = await cli(['demo', '--dir', dir.path]);
      expect(human.stdout).toMatch(/seeded drift: delivery-eta region=eu-west, error noise ×2\.5 from 2026-03-13 on/);
      expect(human.stdout).toMatch(/\d+ alert\(s\) raised/);
    } finally {
      await dir.remove();
    }
  }, 240_000);
});

/** A metrics v2 record as read back (SPEC §5.1 adds label_age_s). */
type MetricsRecord = ModelMetricsRecord & { label_age_s: number | null };

const SECOND = 1_000_000;
const DEFAULT_LABEL_AGES_S = [3600, 6 * 3600, 86_400, 2 * 86_400, 3 * 86_400, 7 * 86_400];

describe('preliminary alerts at equal label age (finals with label-age records)', () => {
  // Days 0–8 get finals; day 3's partition is metrics v1 (no label-age records). Day 8 is a quiet
  // day, day 9 carries a drift of delivery-eta in eu-west. Both are run as preliminaries.
  const from = '2026-04-01';
  const dates = Array.from({ length: 10 }, (_, d) => addDays(from, d));
  const [quietDay, driftDay] = [dates[8]!, dates[9]!];
  const v1Day = dates[3]!;
  const finalAsOf = new Date(dayWindow(dates[8]!).endMicros / 1000 + 8 * 86_400_000).toISOString();
  // k = 5 over 7 counted days: a chance alert among the ~100 slice-metrics of a day is unlikely
  // (t₆ beyond 5/√(1 + 1/7) ≈ 4.7, one-sided ≈ 0.2%), while the drift's MSE is ×6.
  const args = ['--baseline-days', '8', '--baseline-min-days', '7', '--alert-min-labeled', '150', '--alert-sigma', '5'];
  const settings = resolveAlertConfig({ 'baseline-days': 8, 'baseline-min-days': 7, 'alert-min-labeled': 150, 'alert-sigma': '5' });
  let dir: { path: string; remove: () => Promise<void> };
  let root: DatasetRoot;
  let metrics: ObjectStore;
  let alerts: LocalObjectStore;

  const asOf = (date: string, ageS: number): string => new Date(dayWindow(date).endMicros / 1000 + ageS * 1000).toISOString();
  const preliminary = (date: string, ageS: number, extra: string[] = []): Promise<CliResult> =>
    cli(['run', '--date', date, '--stage', 'preliminary', '--as-of', asOf(date, ageS), '--fail-on-alert', '--json', ...args, ...extra, ...root.args]);
  const dayRecords = (stage: 'preliminary' | 'final', date: string): Promise<MetricsRecord[]> => readRecords<MetricsRecord>(metrics, `stage=${stage}/dt=${date}/metrics.avro`, metricsType);

  /** Rewrites a committed final metrics partition with `records` (type v1 or v2) and its manifest's outputs. */
  async function rewriteFinal(date: string, records: readonly MetricsRecord[], type: Type): Promise<void> {
    const key = `stage=final/dt=${date}/metrics.avro`;
    const manifest = (await readManifest(metrics, `stage=final/dt=${date}/_SUCCESS`)) as unknown as Manifest;
    const writer = new AvroFilesWriter(metrics, { type, codec: 'deflate', keyOf: () => key, metadata: { 'model_metrics.stage': 'final' }, maxPartBytes: Number.POSITIVE_INFINITY });
    for (const record of records) await writer.append(record);
    const outputs = await writer.finish();
    await metrics.write(`stage=final/dt=${date}/_SUCCESS`, serializeManifest({ ...manifest, outputs }), 'application/json');
  }

  /** An hourly copy of a record with absurd figures: readers of the baseline must leave it out. */
  const hourly = (r: MetricsRecord): MetricsRecord => ({ ...r, window_end_ts: r.window_start_ts + 3600 * SECOND, mse: (r.mse ?? 1) * 100, mae: (r.mae ?? 1) * 10, missing_label_rate: 0.99 });

  beforeAll(async () => {
    dir = await tempDirectory('alerts-label-age');
    root = localRoot(join(dir.path, 'root'));
    metrics = root.store('metrics');
    alerts = alertsStore(root);
    await generateSample(root.store('predictions'), root.store('labels'), {
      from,
      days: dates.length,
      predictionsPerDay: 4000,
      filesPerDay: 2,
      seed: 21,
      drift: { model: 'delivery-eta', segmentKey: 'region', segmentValue: 'eu-west', fromDay: 9, noiseFactor: 2.5 },
    });
    // The finals of days 0–8 through the real CLI (they write the ordinary records).
    const finals = await cli(['backfill', '--from', dates[0]!, '--to', dates[8]!, '--stage', 'final', '--as-of', finalAsOf, '--concurrency', '2', '--json', ...args, ...root.args]);
    expect(finals.code, describeRun(finals)).toBe(0);
    const metricsV1 = loadSchemaVersion('metrics', 1);
    for (const date of dates.slice(0, 9)) {
      const window = dayWindow(date);
      const committed = await dayRecords('final', date);
      const ordinary = committed.filter((r) => r.label_age_s === null && r.window_start_ts === window.startMicros && r.window_end_ts === window.endMicros);
      if (date === v1Day) {
        await rewriteFinal(date, ordinary, metricsV1);
        continue;
      }
      // The final's own label-age records (SPEC §5.1), as the job wrote them.
      const held = committed.filter((r) => r.label_age_s !== null);
      const dayOnly = [...ordinary, ...held];
      // Hourly copies first, so a reader that did not check the window would take them.
      await rewriteFinal(date, [...dayOnly.map(hourly), ...committed.filter((r) => !dayOnly.includes(r)), ...dayOnly], metricsType);
    }
  }, 300_000);

  afterAll(async () => {
    await dir.remove();
  });

  it('the fixture: v2 finals hold label-age records beside the ordinary ones, day 3 is v1', async () => {
    const records = await dayRecords('final', dates[0]!);
    // The job's default --label-ages, every one within a final's labels-through (end of D + P7D).
    const ages = new Set(records.map((r) => r.label_age_s));
    expect(ages).toEqual(new Set([null, ...DEFAULT_LABEL_AGES_S]));
    expect((await readManifest(metrics, `stage=final/dt=${dates[0]}/_SUCCESS`))!.outputs).toEqual([expect.objectContaining({ records: records.length })]);
    expect((await dayRecords('final', v1Day)).every((r) => r.label_age_s === null)).toBe(true);
  });

  it('a quiet day 6.5 hours old does not alert at equal label age, though against the finals its coverage would', async () => {
    const run = await preliminary(quietDay, 6.5 * 3600);
    expect(run.code, describeRun(run)).toBe(0);
    const summary = run.json<{ status: string; alerts: DayAlerts }>();
    expect(summary.status).toBe('done');
    expect(summary.alerts).toMatchObject({ fired: 0, baseline_days_found: 8, baseline_days_without_label_ages: [v1Day], skipped: { no_label_age_baseline: 0 } });
    expect(summary.alerts.compared).toBeGreaterThan(10);
    expect(await readRecords(alerts, `stage=preliminary/dt=${quietDay}/alerts.avro`, alertType)).toEqual([]);
    expect(run.logs.find((l) => l.event === 'alerts_evaluated')).toMatchObject({ baseline_days_without_label_ages: [v1Day] });
    // The same records against the baseline days' ordinary finals (the comparison §8 rules out):
    // young coverage is far below a final's, so every slice compared would alert on it.
    const today = await dayRecords('preliminary', quietDay);
    const baseline: BaselineDay[] = await Promise.all(dates.slice(0, 8).reverse().map(async (date) => ({ date, records: await dayRecords('final', date) })));
    const againstFinals = evaluateAlerts(today, baseline, { stage: 'final', window: dayWindow(quietDay), labelAgeS: 0 }, settings);
    expect(againstFinals.alerts.filter((a) => a.metric === 'coverage').length).toBeGreaterThan(10);
  }, 120_000);

  it('the drift day alerts at 6 hours, in the drifted segment, against the 6-hour records', async () => {
    const run = await preliminary(driftDay, 6.5 * 3600);
    expect(run.code, describeRun(run)).toBe(4);
    const summary = run.json<{ alerts: DayAlerts }>().alerts;
    expect(summary.fired).toBeGreaterThan(0);
    for (const alert of summary.alerts) {
      expect(alert, alert.message).toMatchObject({ stage: 'PRELIMINARY', model_name: 'delivery-eta', label_age_s: 6 * 3600, baseline_days: 7 });
      expect(alert.metric, alert.message).not.toBe('coverage');
      expect(alert.message).toContain('at label age PT6H');
    }
    expect(summary.alerts.some((a) => a.slice_keys.region === 'eu-west' && a.metric === 'mse' && a.rule === 'sigma')).toBe(true);
    expect(await readRecords<AlertRecord>(alerts, `stage=preliminary/dt=${driftDay}/alerts.avro`, alertType)).toEqual(summary.alerts);
  }, 120_000);

  it('25 hours old it compares at one day (the largest age not above its own); younger than every age (half an hour) it is skipped', async () => {
    const day = await preliminary(driftDay, 25 * 3600);
    expect(day.code, describeRun(day)).toBe(4);
    const found = day.json<{ alerts: DayAlerts }>().alerts.alerts;
    expect(found.some((a) => a.slice_keys.region === 'eu-west' && a.metric === 'mse')).toBe(true);
    expect(new Set(found.map((a) => a.label_age_s))).toEqual(new Set([86_400]));
    // Half an hour old: younger than the youngest label age (PT1H), so nothing is comparable.
    const young = await preliminary(driftDay, 0.5 * 3600);
    expect(young.code, describeRun(young)).toBe(0);
    const skipped = young.json<{ alerts: DayAlerts }>().alerts;
    expect(skipped).toMatchObject({ fired: 0, compared: 0 });
    expect(skipped.skipped.no_label_age_baseline).toBeGreaterThan(10);
    const human = await cli(['run', '--date', driftDay, '--stage', 'preliminary', '--as-of', asOf(driftDay, 0.5 * 3600), ...args, ...root.args]);
    expect(human.stdout).toMatch(/skipped: (\d+ too few labeled, )?\d+ no label age baseline/);
    expect(human.stdout).toContain(`1 baseline day(s) hold no label-age records and do not count for this preliminary`);
  }, 180_000);
});
