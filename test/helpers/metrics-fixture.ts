/**
 * Committed metrics partitions made from known rows, for the report tests: each record's sums are
 * computed here from (y_true, y_pred) pairs, so a roll-up can be checked against a direct computation
 * over the same rows. `v2` writes with schemas/metrics/v2.avsc (SPEC §5.1: `sum_X_lo` pairs and
 * `label_age_s`), `v1` with schemas/metrics/v1.avsc.
 */
import type { Type } from 'avsc';
import { loadSchemaVersion } from '../../src/avro/schemas.js';
import { dayWindow } from '../../src/join/policy.js';
import type { Stage } from '../../src/join/records.js';
import { CompensatedSum } from '../../src/metrics/compensated.js';
import { metricsFromSums } from '../../src/metrics/formulas.js';
import { SUM_FIELDS } from '../../src/report/metrics-reader.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { avroFile } from './cli.js';

export { seededRandom } from '../../src/demo/generate.js';

/** One prediction: its truth (null when unlabeled) and its prediction. */
export interface FixtureRow {
  y_true: number | null;
  y_pred: number;
}

/** What identifies a record. */
export interface FixtureSlice {
  model: string;
  version: string;
  slice?: Record<string, string>;
  /** Seconds after the end of the day its labels were read through (preliminary), default 6 h. */
  labelAgeS?: number;
  /** A §5.1 label-age record (v2 only). */
  labelAgeRecord?: number;
  delayP95S?: number;
  /** An hourly record (`--windows PT1H`, v2 only): the hour of the day it covers, 0..23. */
  hour?: number;
}

export const metricsV1Type: Type = loadSchemaVersion('metrics', 1);

export const metricsV2Type: Type = loadSchemaVersion('metrics', 2);

/** The ModelMetrics record of `rows` (sums as double words; v1 keeps only hi + lo rounded). */
export function recordOf(stage: Stage, date: string, slice: FixtureSlice, rows: readonly FixtureRow[], v2: boolean): Record<string, unknown> {
  const sums = Object.fromEntries(SUM_FIELDS.map((f) => [f, new CompensatedSum()])) as Record<(typeof SUM_FIELDS)[number], CompensatedSum>;
  let labeled = 0;
  let mapeCount = 0;
  for (const row of rows) {
    if (row.y_true === null) continue;
    const e = row.y_true - row.y_pred;
    labeled++;
    sums.sum_error.add(e);
    sums.sum_sq_error.addSquare(e);
    sums.sum_abs_error.add(Math.abs(e));
    sums.sum_quad_error.addFourthPower(e);
    if (row.y_true !== 0) {
      mapeCount++;
      sums.sum_ape.add(Math.abs(e / row.y_true));
    }
    sums.sum_y_true.add(row.y_true);
    sums.sum_sq_y_true.addSquare(row.y_true);
  }
  const day = dayWindow(date);
  const derived = metricsFromSums({ count: rows.length, labeled_count: labeled, mape_count: mapeCount, ...sums });
  const labelsThrough =
    slice.labelAgeRecord !== undefined ? day.endMicros + slice.labelAgeRecord * 1_000_000 : stage === 'final' ? day.endMicros + 7 * 86_400_000_000 : day.endMicros + (slice.labelAgeS ?? 6 * 3600) * 1_000_000;
  const hourMicros = 3_600_000_000;
  const record: Record<string, unknown> = {
    window_start_ts: slice.hour === undefined ? day.startMicros : day.startMicros + slice.hour * hourMicros,
    window_end_ts: slice.hour === undefined ? day.endMicros : day.startMicros + (slice.hour + 1) * hourMicros,
    stage: stage === 'final' ? 'FINAL' : 'PRELIMINARY',
    model_name: slice.model,
    model_version: slice.version,
    slice_keys: slice.slice ?? {},
    count: rows.length,
    labeled_count: labeled,
    mape_count: mapeCount,
    ...derived,
    label_delay_p50_s: labeled === 0 ? null : (slice.delayP95S ?? 7200) / 2,
    label_delay_p95_s: labeled === 0 ? null : slice.delayP95S ?? 7200,
    label_delay_max_s: labeled === 0 ? null : (slice.delayP95S ?? 7200) * 2,
    invalid_count: 0,
    duplicate_prediction_count: 0,
    duplicate_label_count: 0,
    negative_delay_count: 0,
    misplaced_count: 0,
    labels_through_ts: labelsThrough,
  };
  for (const f of SUM_FIELDS) {
    record[f] = v2 ? sums[f].hi : sums[f].value;
    if (v2) record[`${f}_lo`] = sums[f].lo;
  }
  if (v2) record.label_age_s = slice.labelAgeRecord ?? null;
  return record;
}

/** Writes `records` as the committed metrics partition of a stage and date (metrics.avro, then _SUCCESS). */
export async function writeMetricsPartition(store: ObjectStore, stage: Stage, date: string, records: readonly Record<string, unknown>[], v2: boolean): Promise<void> {
  const key = `stage=${stage}/dt=${date}/metrics.avro`;
  const bytes = avroFile(v2 ? metricsV2Type : metricsV1Type, records);
  await store.write(key, bytes);
  const manifest = { format: 'model-metrics/success@1', dataset: 'metrics', stage, date, fingerprint: 'fixture', outputs: [{ key, size: bytes.length, records: records.length }] };
  await store.write(`stage=${stage}/dt=${date}/_SUCCESS`, Buffer.from(JSON.stringify(manifest)));
}

/** `n` rows around `level` with errors of scale `noise`; `coverage` of them labeled. */
export function fixtureRows(random: () => number, n: number, level: number, noise: number, coverage: number): FixtureRow[] {
  return Array.from({ length: n }, () => {
    const y = level + (random() - 0.5) * level;
    return { y_true: random() < coverage ? y : null, y_pred: y + (random() - 0.5) * 2 * noise };
  });
}
