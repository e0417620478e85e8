/**
 * Alerts end to end through the real CLI on local folders (SPEC §8): a seeded drift in one segment
 * of one model, a final backfill whose alerts do not depend on --concurrency, the alerts files
 * committed with each day (header-only when none fired), reruns byte-identical, `event: alert`
 * logs, exit 4 with --fail-on-alert, and the bad cases of the alert options.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import { alertType } from '../../src/avro/schemas.js';
import type { AlertRecord } from '../../src/alerts/policy.js';
import { addDays } from '../../src/config/dates.js';
import { generateSample } from '../../src/demo/generate.js';
import { LocalObjectStore } from '../../src/storage/local.js';
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
