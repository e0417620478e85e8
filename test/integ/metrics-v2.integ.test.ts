/**
 * ModelMetrics v2 (SPEC §5.1) through the real CLI on local folders: a final run's label-age records
 * against preliminary runs at --as-of = end of D + A, bit for bit; the same rows in another order
 * and another split into files give a byte-identical metrics file; hourly records; bad --windows and
 * --label-ages values are exit 2 naming the option.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelType, loadSchemaVersion, metricsType, predictionType } from '../../src/avro/schemas.js';
import type { Report } from '../../src/report/build.js';
import { generateSample, seededRandom } from '../../src/demo/generate.js';
import type { LabelRecord, PredictionRecord } from '../../src/join/records.js';
import type { ModelMetricsRecord } from '../../src/join/slices.js';
import { type CliResult, type DatasetRoot, avroFile, cliEnv, describeRun, localRoot, micros, putAll, readBytes, readRecords, runCli, tempDirectory } from '../helpers/cli.js';

const DATE = '2026-03-02';
const END_OF_DAY = micros('2026-03-03T00:00:00Z');
const FINAL_AS_OF = '2026-03-20T00:00:00Z';
/** The default ages at or before every final cutoff of D (end of D + P6D): PT1H … P3D. */
const AGES: Array<[string, number]> = [
  ['PT1H', 3600],
  ['PT6H', 21_600],
  ['P1D', 86_400],
  ['P2D', 172_800],
  ['P3D', 259_200],
];
const METRICS_KEY = (stage: string): string => `stage=${stage}/dt=${DATE}/metrics.avro`;

async function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await runCli(args, cliEnv('http://127.0.0.1:9', env));
  expect(result.nonJsonStderr, describeRun(result)).toEqual([]);
  return result;
}

async function metricsOf(root: DatasetRoot, stage: 'preliminary' | 'final'): Promise<ModelMetricsRecord[]> {
  return readRecords<ModelMetricsRecord>(root.store('metrics'), METRICS_KEY(stage), metricsType);
}

/** A record's bytes without the fields that name the run (stage, label age). */
function numbersOf(r: ModelMetricsRecord): string {
  return metricsType.toBuffer({ ...r, stage: 'PRELIMINARY', label_age_s: null }).toString('hex');
}

const sliceOf = (r: ModelMetricsRecord): string => `${r.model_name}@${r.model_version} ${JSON.stringify(r.slice_keys)}`;
const isDay = (r: ModelMetricsRecord): boolean => r.window_end_ts - r.window_start_ts === 86_400_000_000;

describe('metrics v2 through the CLI (local folders)', () => {
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  let root: DatasetRoot;
  let final: ModelMetricsRecord[];

  beforeAll(async () => {
    const dir = await tempDirectory('metrics-v2');
    dirs.push(dir);
    root = localRoot(dir.path);
    await generateSample(root.store('predictions'), root.store('labels'), { from: DATE, days: 1, predictionsPerDay: 4000, filesPerDay: 4, seed: 3 });
    const run = await cli(['run', '--date', DATE, '--stage', 'final', '--as-of', FINAL_AS_OF, '--windows', 'P1D,PT1H', '--json', ...root.args]);
    expect(run.code, describeRun(run)).toBe(0);
    final = await metricsOf(root, 'final');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(dirs.map((d) => d.remove()));
  });

  it('writes label-age records bit-identical to preliminary runs at --as-of = end of D + A', async () => {
    for (const [iso, seconds] of AGES) {
      const asOf = new Date((END_OF_DAY + seconds * 1_000_000) / 1000).toISOString();
      const run = await cli(['run', '--date', DATE, '--stage', 'preliminary', '--as-of', asOf, '--label-ages', 'none', ...root.args]);
      expect(run.code, describeRun(run)).toBe(0);
      const preliminary = await metricsOf(root, 'preliminary');
      const ages = final.filter((r) => r.label_age_s === seconds);
      expect(ages.map(sliceOf), iso).toEqual(preliminary.map(sliceOf));
      expect(ages.map(numbersOf), iso).toEqual(preliminary.map(numbersOf));
      expect(preliminary.every((r) => r.label_age_s === null && r.labels_through_ts === END_OF_DAY + seconds * 1_000_000)).toBe(true);
    }
    // Coverage of the whole version grows along the curve, up to the final's.
    const whole = final.filter((r) => isDay(r) && sliceOf(r) === sliceOf(final[0]!));
    const byAge = whole.filter((r) => r.label_age_s !== null).map((r) => r.labeled_count);
    expect(byAge).toEqual([...byAge].sort((a, b) => a - b));
    expect(byAge[0]).toBeLessThan(whole[0]!.labeled_count);
  }, 240_000);

  it('writes one record per slice-hour with predictions, hours summing to the day without misplaced ones', () => {
    const day = final.filter((r) => isDay(r) && r.label_age_s === null);
    for (const d of day) {
      const hours = final.filter((r) => !isDay(r) && sliceOf(r) === sliceOf(d));
      expect(hours.length).toBeGreaterThan(0);
      expect(hours.every((h) => h.label_age_s === null && h.misplaced_count === 0)).toBe(true);
      // The demo stamps a few predictions the evening before D: counted in the day only.
      expect(hours.reduce((n, h) => n + h.count, 0)).toBeLessThanOrEqual(d.count);
      expect(hours.reduce((n, h) => n + h.count, 0) + d.misplaced_count).toBeGreaterThanOrEqual(d.count);
    }
    const keys = final.map((r) => `${sliceOf(r)} ${r.window_start_ts} ${r.window_end_ts} ${r.label_age_s}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('gives a byte-identical metrics file for the same rows in another order and split', async () => {
    // Without re-sent predictions and label_ts ties (which SPEC §3 settles by input order), order must not matter.
    const predictions: PredictionRecord[] = [];
    for (const key of (await root.store('predictions').list('')).map((o) => o.key).sort()) predictions.push(...(await readRecords<PredictionRecord>(root.store('predictions'), key, predictionType)));
    const labels: LabelRecord[] = [];
    for (const o of await root.store('labels').list('')) labels.push(...(await readRecords<LabelRecord>(root.store('labels'), o.key, labelType)));
    const seen = new Set<string>();
    const unique = predictions.filter((p) => !seen.has(p.prediction_id) && seen.add(p.prediction_id));
    const random = seededRandom(99);
    const shuffled = <T>(items: readonly T[]): T[] => {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    };
    const roots: DatasetRoot[] = [];
    for (const [name, order, files] of [
      ['ordered', unique, 1],
      ['shuffled', shuffled(unique), 3],
    ] as const) {
      const dir = await tempDirectory(`metrics-v2-${name}`);
      dirs.push(dir);
      const r = localRoot(dir.path);
      const byDate = new Map<string, LabelRecord[]>();
      for (const l of name === 'ordered' ? labels : shuffled(labels)) {
        const date = new Date(l.label_ts / 1000).toISOString().slice(0, 10);
        byDate.set(date, [...(byDate.get(date) ?? []), l]);
      }
      await putAll(
        r.store('predictions'),
        Array.from({ length: files }, (_, f) => [`dt=${DATE}/hour=0${f}/part-0.avro`, avroFile(predictionType, order.filter((_, i) => i % files === f))] as const),
      );
      await putAll(
        r.store('labels'),
        [...byDate].map(([date, list]) => [`dt=${date}/part-0.avro`, avroFile(labelType, list)] as const),
      );
      const run = await cli(['run', '--date', DATE, '--stage', 'final', '--as-of', FINAL_AS_OF, '--windows', 'P1D,PT1H', ...r.args]);
      expect(run.code, describeRun(run)).toBe(0);
      roots.push(r);
    }
    const [a, b] = await Promise.all(roots.map((r) => readBytes(r.store('metrics'), METRICS_KEY('final'))));
    expect(a!.length).toBeGreaterThan(1000);
    expect(b!.equals(a!)).toBe(true);
  }, 240_000);

  it('report reads a v1 partition beside a v2 one and rolls both up', async () => {
    // The v2 day without hourly records (the report's roll-ups take day records; see the report notes).
    const rerun = await cli(['run', '--date', DATE, '--stage', 'final', '--as-of', FINAL_AS_OF, ...root.args]);
    expect(rerun.code, describeRun(rerun)).toBe(0);
    // A v1 partition for the day before: the same day records, written with schemas/metrics/v1.avsc.
    const previous = '2026-03-01';
    const v1Records = final.filter((r) => isDay(r) && r.label_age_s === null).map((r) => ({ ...r, window_start_ts: r.window_start_ts - 86_400_000_000, window_end_ts: r.window_end_ts - 86_400_000_000 }));
    const v1Key = `stage=final/dt=${previous}/metrics.avro`;
    await putAll(root.store('metrics'), [[v1Key, avroFile(loadSchemaVersion('metrics', 1), v1Records)]]);
    const manifest = JSON.parse(await readFile(join(root.uri, 'metrics', `stage=final/dt=${DATE}/_SUCCESS`), 'utf8')) as { outputs: Array<{ key: string }> };
    manifest.outputs = [{ ...manifest.outputs[0]!, key: v1Key }];
    await writeFile(join(root.uri, 'metrics', `stage=final/dt=${previous}/_SUCCESS`), JSON.stringify(manifest));
    const report = await cli(['report', '--from', previous, '--to', DATE, '--stage', 'final', '--by', 'week', '--format', 'json', ...root.args]);
    expect(report.code, describeRun(report)).toBe(0);
    const rows = (JSON.parse(report.stdout) as Report).rows.filter((r) => r.kind !== 'missing');
    for (const day of v1Records.filter((r) => Object.keys(r.slice_keys).length === 0)) {
      // 2026-03-01 is a Sunday: two ISO weeks, each one day, each that day's own figures.
      const byWeek = rows.filter((r) => r.version === day.model_version && r.slice === 'all' && r.kind === 'window');
      expect(byWeek.map((r) => r.count)).toEqual([day.count, day.count]);
      // v2: the pairs give the day's own mse to the bit; v1: from sums rounded once, to ~1e-15.
      expect(byWeek[1]!.mse).toBe(day.mse);
      expect(Math.abs(byWeek[0]!.mse! - day.mse!)).toBeLessThanOrEqual(1e-14 * day.mse!);
    }
  });

  it.each([
    [['--windows', 'P1D,PT15M'], {}, /--windows: PT15M is not a supported window/],
    [['--windows', 'PT1H'], {}, /--windows .* has no P1D/],
    [['--label-ages', 'PT1H,PT60M'], {}, /--label-ages lists one age twice/],
    [['--label-ages', 'PT0S'], {}, /--label-ages: PT0S is zero/],
    [[], { MODEL_METRICS_LABEL_AGES: 'P1D,banana' }, /--label-ages: "banana" is not an ISO-8601 duration/],
  ])('refuses %j %j with exit 2 naming the option', async (args, env, message) => {
    const run = await cli(['run', '--date', DATE, '--stage', 'final', '--as-of', FINAL_AS_OF, ...args, ...root.args], env);
    expect(run.code, describeRun(run)).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});
