/**
 * Reads the committed metrics partitions of a date range for the report (SPEC §7). Only partitions
 * whose `_SUCCESS` manifest lists the metrics file exist (SPEC §1); each record is checked before it
 * is used, so a report never rolls up a negative count or a labeled count above the count.
 *
 * The reader type is the package's latest ModelMetrics schema (v2, SPEC §5.1): a v1 file resolves
 * every `sum_X_lo` companion to 0 and `label_age_s` to null, a v2 file supplies them, so a range that
 * mixes v1 and v2 partitions reads as one dataset. Each record says which it came from (a v1 file's
 * sums were rounded once) and what it is: an ordinary day record, an hourly one (`--windows PT1H`)
 * or a label-age (maturity) record.
 */
import { decodeContainer } from '../avro/container-reader.js';
import { metricsType } from '../avro/schemas.js';
import { METRICS_FILE, SUCCESS_FILE, outputPartition } from '../dataset/layout.js';
import { parseManifest } from '../dataset/manifest.js';
import { CorruptObjectError } from '../errors.js';
import { dayWindow } from '../join/policy.js';
import type { Stage } from '../join/records.js';
import type { ModelMetricsRecord } from '../join/slices.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';

import { SUM_FIELDS } from '../metrics/formulas.js';

export { SUM_FIELDS };
/** One of SUM_FIELDS. */
export type SumField = (typeof SUM_FIELDS)[number];

/** A metrics record as the report reads it: v1 fields, plus the v2 ones (defaults for v1 files). */
export type ReportMetricsRecord = ModelMetricsRecord & { [K in `${SumField}_lo`]: number } & { label_age_s: number | null };

/**
 * What a record is (SPEC §5.1): the day's ordinary record, one hour of the day (`--windows PT1H`),
 * or a point of the day's label maturity curve (non-null `label_age_s`).
 */
export type RecordKind = 'day' | 'hour' | 'label_age';

/** A record with the stage and date of the partition it came from, and its object's URI. */
export interface LoadedRecord {
  stage: Stage;
  date: string;
  uri: string;
  /** 1 when the file's writer schema has no `sum_X_lo` companions (each sum rounded once), else 2. */
  metricsVersion: 1 | 2;
  kind: RecordKind;
  record: ReportMetricsRecord;
}

const COUNT_FIELDS = ['count', 'labeled_count', 'mape_count', 'invalid_count', 'duplicate_prediction_count', 'duplicate_label_count', 'negative_delay_count', 'misplaced_count'] as const;
/** Sums of non-negative terms (Σe², Σ|e|, Σe⁴, Σ|e/y|, Σy²): a negative value is a broken record. */
const NON_NEGATIVE_SUMS = ['sum_sq_error', 'sum_abs_error', 'sum_quad_error', 'sum_ape', 'sum_sq_y_true'] as const;

/** Throws a CorruptObjectError naming the object, the record and the field when a record cannot be rolled up. */
export function checkRecord(record: ReportMetricsRecord, uri: string, index: number, stage: Stage): void {
  const fail = (field: string, expected: string): never => {
    const actual = (record as unknown as Record<string, unknown>)[field];
    throw new CorruptObjectError(
      `${uri}: record ${index} (${record.model_name}@${record.model_version} ${JSON.stringify(record.slice_keys)}): ${field} must be ${expected}, got ${JSON.stringify(actual)}; recompute the day with \`model-metrics run --date … --stage ${stage} --force\``,
      { uri, field, record: index },
    );
  };
  for (const field of COUNT_FIELDS) {
    const value = record[field];
    if (!Number.isSafeInteger(value) || value < 0) fail(field, 'a non-negative integer');
  }
  if (record.labeled_count > record.count) fail('labeled_count', `at most count (${record.count})`);
  if (record.mape_count > record.labeled_count) fail('mape_count', `at most labeled_count (${record.labeled_count})`);
  for (const field of SUM_FIELDS) {
    if (Number.isNaN(record[field])) fail(field, 'a number');
    if (!Number.isFinite(record[`${field}_lo`])) fail(`${field}_lo`, 'a finite number');
  }
  for (const field of NON_NEGATIVE_SUMS) if (record[field] < 0) fail(field, 'non-negative (a sum of non-negative terms)');
  const expectedStage = stage === 'final' ? 'FINAL' : 'PRELIMINARY';
  if (record.stage !== expectedStage) fail('stage', `${expectedStage} in a stage=${stage} partition`);
  if (record.label_age_s !== null && !Number.isSafeInteger(record.label_age_s)) fail('label_age_s', 'null or an integer');
}

/** The URI of a date's committed metrics file, or undefined when the partition is not committed. */
async function committedMetricsFile(store: ObjectStore, stage: Stage, date: string): Promise<string | undefined> {
  const partition = outputPartition(stage, date);
  const manifestBytes = await store.readSmall(`${partition}${SUCCESS_FILE}`);
  if (manifestBytes === undefined) return undefined;
  const manifest = parseManifest(manifestBytes);
  return manifest?.outputs.find((o) => o.key === `${partition}${METRICS_FILE}`)?.key;
}

/** What was read: every checked record, and the dates of each stage without a committed partition. */
export interface LoadedMetrics {
  records: LoadedRecord[];
  missing: Array<{ date: string; stage: Stage }>;
}

/** Whether a writer schema carries the SPEC §5.1 low parts: the metrics version a file was written with. */
function metricsVersionOf(writerSchema: unknown): 1 | 2 {
  const fields = (writerSchema as { fields?: Array<{ name?: unknown }> }).fields ?? [];
  return fields.some((f) => f.name === 'sum_error_lo') ? 2 : 1;
}

/** The kind of a record of the partition of `date`: label-age, the day's window, or a shorter (hourly) one. */
function kindOf(record: ReportMetricsRecord, day: { startMicros: number; endMicros: number }): RecordKind {
  if (record.label_age_s !== null) return 'label_age';
  return record.window_start_ts === day.startMicros && record.window_end_ts === day.endMicros ? 'day' : 'hour';
}

/** Decodes one committed metrics file (pinned to its listed ETag), checking every record. */
async function readMetricsFile(store: ObjectStore, info: ObjectInfo, stage: Stage, date: string): Promise<LoadedRecord[]> {
  const uri = store.uriOf(info.key);
  const day = dayWindow(date);
  const stream = await store.read(info.key, { ifMatch: info.etag });
  let metricsVersion: 1 | 2 = 1;
  const loaded: LoadedRecord[] = [];
  try {
    const blocks = decodeContainer(stream, { uri, readerType: metricsType, expectedBytes: info.size, onHeader: (header) => (metricsVersion = metricsVersionOf(header.writerSchema)) });
    for await (const block of blocks) {
      for (const record of block as ReportMetricsRecord[]) {
        checkRecord(record, uri, loaded.length, stage);
        loaded.push({ stage, date, uri, metricsVersion, kind: kindOf(record, day), record });
      }
    }
  } finally {
    stream.destroy();
  }
  return loaded;
}

/**
 * Reads the committed metrics of each date and stage, keeping the records `keep` accepts. Memory is
 * the kept records: one per (model version, slice, window, label age) and day, far below the rows they summarise.
 */
export async function loadMetrics(store: ObjectStore, dates: readonly string[], stages: readonly Stage[], keep: (record: LoadedRecord) => boolean): Promise<LoadedMetrics> {
  const records: LoadedRecord[] = [];
  const missing: Array<{ date: string; stage: Stage }> = [];
  for (const stage of stages) {
    for (const date of dates) {
      const key = await committedMetricsFile(store, stage, date);
      const info = key === undefined ? undefined : await store.head(key);
      if (info === undefined) {
        missing.push({ date, stage });
        continue;
      }
      for (const loaded of await readMetricsFile(store, info, stage, date)) if (keep(loaded)) records.push(loaded);
    }
  }
  missing.sort((a, b) => a.date.localeCompare(b.date) || a.stage.localeCompare(b.stage));
  return { records, missing };
}
