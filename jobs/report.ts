/**
 * `model-metrics report`: the weekly-review table from committed metrics partitions. One row per
 * model version and day (the whole-version slice), then one roll-up row per model version over the
 * range, computed exactly from the daily sufficient statistics (SPEC §5) without rereading rows.
 */
import { metricsType } from '../src/avro/schemas.js';
import { dateRange } from '../src/config/dates.js';
import { METRICS_FILE, SUCCESS_FILE, outputPartition } from '../src/dataset/layout.js';
import { parseManifest } from '../src/dataset/manifest.js';
import type { Stage } from '../src/join/records.js';
import type { ModelMetricsRecord } from '../src/join/slices.js';
import { rollupMetrics } from '../src/metrics/formulas.js';
import type { ObjectStore } from '../src/storage/types.js';
import { readInOrder } from '../src/pipeline/ordered-reader.js';

/** What to report. */
export interface ReportRequest {
  from: string;
  to: string;
  stage: Stage;
}

/** One row of the report. */
export interface ReportRow {
  model_name: string;
  model_version: string;
  window: string;
  count: number;
  labeled_count: number;
  mse: number | null;
  rmse: number | null;
  mae: number | null;
  mape: number | null;
  r2: number | null;
  coverage: number | null;
}

/** The report: daily rows, roll-ups, and the dates without committed metrics. */
export interface Report {
  stage: Stage;
  from: string;
  to: string;
  rows: ReportRow[];
  missing_dates: string[];
}

function rowOf(window: string, records: ModelMetricsRecord[]): ReportRow {
  const m = rollupMetrics(records);
  const first = records[0]!;
  return {
    model_name: first.model_name,
    model_version: first.model_version,
    window,
    count: m.count,
    labeled_count: m.labeled_count,
    mse: m.mse,
    rmse: m.rmse,
    mae: m.mae,
    mape: m.mape,
    r2: m.r2,
    coverage: m.missing_label_rate === null ? null : 1 - m.missing_label_rate,
  };
}

/** Reads the committed metrics of every date in the range. */
export async function buildReport(metrics: ObjectStore, request: ReportRequest): Promise<Report> {
  const dates = dateRange(request.from, request.to);
  const missing: string[] = [];
  const daily = new Map<string, ModelMetricsRecord[]>(); // model version → whole-version records by date order
  const rows: ReportRow[] = [];
  for (const date of dates) {
    const partition = outputPartition(request.stage, date);
    const manifestBytes = await metrics.readSmall(`${partition}${SUCCESS_FILE}`);
    const manifest = manifestBytes === undefined ? undefined : parseManifest(manifestBytes);
    const file = manifest?.outputs.find((o) => o.key === `${partition}${METRICS_FILE}`);
    if (file === undefined) {
      missing.push(date);
      continue;
    }
    const info = await metrics.head(file.key);
    if (info === undefined) {
      missing.push(date);
      continue;
    }
    for await (const block of readInOrder<ModelMetricsRecord>(metrics, [info], metricsType, 1)) {
      for (const record of block.records) {
        if (Object.keys(record.slice_keys).length !== 0) continue;
        const id = JSON.stringify([record.model_name, record.model_version]);
        const list = daily.get(id) ?? [];
        list.push(record);
        daily.set(id, list);
        rows.push(rowOf(date, [record]));
      }
    }
  }
  const rollups = [...daily.values()].map((records) => rowOf(`${request.from}..${request.to}`, records));
  const order = (a: ReportRow, b: ReportRow): number =>
    a.model_name.localeCompare(b.model_name) || a.model_version.localeCompare(b.model_version) || Number(a.window.includes('..')) - Number(b.window.includes('..')) || a.window.localeCompare(b.window);
  return { stage: request.stage, from: request.from, to: request.to, rows: [...rows, ...rollups].sort(order), missing_dates: missing };
}
