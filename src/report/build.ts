/**
 * The report of SPEC §7 as plain data: rows per model version, slice, window and stage, rolled up
 * from committed daily records, with the notes a reviewer needs; the segment rows and label maturity
 * points the HTML charts draw. Every output format renders this one structure, so they carry the
 * same fields under the same names.
 *
 * Length: over ~400 lines because rows, notes, restatements and maturity points are one
 * structure that every format renders; splitting it would spread one field set over modules.
 */
import { dateRange } from '../calendar.js';
import { NotFoundError, UsageError } from '../errors.js';
import type { Stage } from '../join/records.js';
import type { ObjectStore } from '../storage/types.js';
import { type LoadedRecord, type ReportMetricsRecord, loadMetrics } from './metrics-reader.js';
import { type ReportGrain, type RolledUp, rollUp, windowOf } from './rollup.js';

/** `report --stage`. */
export const reportStages = ['final', 'preliminary', 'both'] as const;
/** One of reportStages. */
export type ReportStage = (typeof reportStages)[number];

/** What to report. */
export interface ReportRequest {
  from: string;
  to: string;
  stage: ReportStage;
  by: ReportGrain;
  /** `--slice KEY[=VALUE]`: that key's slices (one value's) instead of the whole version. */
  slice?: { key: string; value?: string };
  /** `--model NAME[@VERSION]`. */
  model?: { name: string; version?: string };
}

/** What a row is: a window of `--by`, the whole range of a series (window `total`, when it spans several windows), or a date without committed metrics. */
export type RowKind = 'window' | 'range' | 'missing';

/** One row; the field names are the JSON keys and the CSV headers alike. */
export interface ReportRow {
  kind: RowKind;
  model: string | null;
  version: string | null;
  /** `key=value`, or `all` for the whole model version. */
  slice: string | null;
  window: string;
  window_start: string;
  window_end: string;
  stage: Stage;
  /** Days with records in the window. */
  days: number | null;
  count: number | null;
  labeled: number | null;
  coverage: number | null;
  mse: number | null;
  mse_ci_low: number | null;
  mse_ci_high: number | null;
  rmse: number | null;
  mae: number | null;
  mae_ci_low: number | null;
  mae_ci_high: number | null;
  mape: number | null;
  bias: number | null;
  r2: number | null;
  label_delay_p95_s: number | null;
  /** Preliminary rows: seconds from the end of the (last) day to its labels-through instant (the youngest day of a roll-up). */
  label_age_s: number | null;
  /** Final rows with a preliminary of the same window: final MSE − preliminary MSE. */
  restated_mse_delta: number | null;
  /** Whether the preliminary's MSE interval holds the final MSE. */
  preliminary_ci_covers_final: boolean | null;
  notes: string[];
}

/** One point of a label maturity curve (SPEC §5.1 label-age records, rolled up over the range). */
export interface MaturityPoint {
  model: string;
  version: string;
  slice: string;
  stage: Stage;
  label_age_s: number;
  days: number;
  labeled: number;
  coverage: number | null;
  mse: number | null;
  mse_ci_low: number | null;
  mse_ci_high: number | null;
}

/** The whole report. */
export interface Report {
  metrics_uri: string;
  from: string;
  to: string;
  stage: ReportStage;
  by: ReportGrain;
  slice: string | null;
  model: string | null;
  /** The table. */
  rows: ReportRow[];
  /** Every date and stage inside the range without committed metrics. */
  missing: Array<{ date: string; stage: Stage }>;
  /** For the charts' small multiples: window rows of every segment value (empty when `--slice` already chose the slices). */
  segment_rows: ReportRow[];
  /** Label maturity curves; empty when no label-age records exist (metrics v1). */
  maturity: MaturityPoint[];
  /** What a reader of the whole report should know: v1 and v2 partitions mixed, hourly records left out. */
  notes: string[];
}

/** The note of a roll-up over both v1 and v2 days. */
export const MIXED_ROLLUP_NOTE = 'rolls up metrics v1 days (each sum rounded once) with v2 days (exact sum pairs): exact only to the v1 rounding';

/** A coverage change this large (absolute) between consecutive windows gets a note. */
const COVERAGE_NOTE_CHANGE = 0.05;
/** A p95 label delay change by this factor (and by at least LABEL_DELAY_NOTE_MIN_S) gets a note. */
const LABEL_DELAY_NOTE_FACTOR = 1.5;
const LABEL_DELAY_NOTE_MIN_S = 600;

/** `all`, or `key=value` of a one-key slice. */
export function sliceName(keys: Record<string, string>): string {
  const entries = Object.entries(keys);
  return entries.length === 0 ? 'all' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/** A duration for people: 45 s, 12 min, 6.0 h, 2.5 d. */
export function humanDuration(seconds: number): string {
  const sign = seconds < 0 ? '−' : '';
  const s = Math.abs(seconds);
  if (s < 60) return `${sign}${Math.round(s)} s`;
  if (s < 3600) return `${sign}${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${sign}${(s / 3600).toFixed(1)} h`;
  return `${sign}${(s / 86400).toFixed(1)} d`;
}

/** Consecutive dates as ranges: 2026-03-01..2026-03-03, 2026-03-05. */
export function dateRanges(dates: readonly string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < dates.length; ) {
    let j = i;
    while (j + 1 < dates.length && Date.parse(dates[j + 1]!) - Date.parse(dates[j]!) === 86_400_000) j++;
    parts.push(i === j ? dates[i]! : `${dates[i]}..${dates[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function signed(x: number, digits = 4): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toPrecision(digits)}`;
}

function metricFields(m: RolledUp): Pick<ReportRow, 'count' | 'labeled' | 'coverage' | 'mse' | 'mse_ci_low' | 'mse_ci_high' | 'rmse' | 'mae' | 'mae_ci_low' | 'mae_ci_high' | 'mape' | 'bias' | 'r2' | 'label_delay_p95_s'> {
  return {
    count: m.count,
    labeled: m.labeled_count,
    coverage: m.missing_label_rate === null ? null : 1 - m.missing_label_rate,
    mse: m.mse,
    mse_ci_low: m.mse_ci_low,
    mse_ci_high: m.mse_ci_high,
    rmse: m.rmse,
    mae: m.mae,
    mae_ci_low: m.mae_ci_low,
    mae_ci_high: m.mae_ci_high,
    mape: m.mape,
    bias: m.mean_error,
    r2: m.r2,
    label_delay_p95_s: m.label_delay_p95_s,
  };
}

/** Seconds from the end of the record's day to the instant its labels were read through. */
function labelAgeOf(record: ReportMetricsRecord): number {
  return Math.round((record.labels_through_ts - record.window_end_ts) / 1e6);
}

interface Group {
  stage: Stage;
  model: string;
  version: string;
  slice: string;
  window: { label: string; start: string; end: string };
  kind: RowKind;
  records: LoadedRecord[];
}

function rowOf(group: Group): ReportRow {
  const records = group.records.map((r) => r.record);
  const dates = new Set(group.records.map((r) => r.date));
  const ages = group.stage === 'preliminary' ? records.map(labelAgeOf) : [];
  const versions = new Set(group.records.map((r) => r.metricsVersion));
  return {
    kind: group.kind,
    model: group.model,
    version: group.version,
    slice: group.slice,
    window: group.window.label,
    window_start: group.window.start,
    window_end: group.window.end,
    stage: group.stage,
    days: dates.size,
    ...metricFields(rollUp(records)),
    label_age_s: ages.length === 0 ? null : Math.min(...ages),
    restated_mse_delta: null,
    preliminary_ci_covers_final: null,
    notes: versions.size > 1 ? [MIXED_ROLLUP_NOTE] : [],
  };
}

/** Groups records by (stage, model, version, slice, window); the group key's order is the row order. */
function groupRecords(records: readonly LoadedRecord[], windowOfDate: (date: string) => { label: string; start: string; end: string }, kind: RowKind): Group[] {
  const groups = new Map<string, Group>();
  for (const loaded of records) {
    const r = loaded.record;
    const window = windowOfDate(loaded.date);
    const slice = sliceName(r.slice_keys);
    const id = JSON.stringify([r.model_name, r.model_version, slice, window.start, loaded.stage]);
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { stage: loaded.stage, model: r.model_name, version: r.model_version, slice, window, kind, records: [] }));
    group.records.push(loaded);
  }
  return [...groups.values()];
}

const seriesId = (r: Pick<ReportRow, 'model' | 'version' | 'slice' | 'stage'>): string => JSON.stringify([r.model, r.version, r.slice, r.stage]);
const windowId = (r: Pick<ReportRow, 'model' | 'version' | 'slice' | 'window'>): string => JSON.stringify([r.model, r.version, r.slice, r.window]);

function compareRows(a: ReportRow, b: ReportRow): number {
  const text = (x: string | null): string => x ?? '';
  return (
    text(a.model).localeCompare(text(b.model)) ||
    text(a.version).localeCompare(text(b.version)) ||
    Number(a.slice !== 'all') - Number(b.slice !== 'all') ||
    text(a.slice).localeCompare(text(b.slice)) ||
    Number(a.kind === 'range') - Number(b.kind === 'range') ||
    a.window_start.localeCompare(b.window_start) ||
    Number(a.stage === 'final') - Number(b.stage === 'final')
  );
}

/**
 * The notes of SPEC §7, written on the rows they concern: first and last day of a version inside
 * the range, coverage and label delay moving against the previous window of the same series,
 * preliminary-only windows with their label age, and restatements.
 */
function annotate(rows: ReportRow[], request: ReportRequest, versionDays: Map<string, { first: string; last: string }>): void {
  const spans = [...versionDays.values()];
  const dataSpan = { first: spans.map((s) => s.first).sort()[0]!, last: spans.map((s) => s.last).sort().at(-1)! };
  const previous = new Map<string, ReportRow>();
  const byWindow = new Map<string, ReportRow[]>();
  for (const row of rows) {
    const list = byWindow.get(windowId(row)) ?? [];
    list.push(row);
    byWindow.set(windowId(row), list);
  }
  for (const row of rows) {
    const span = versionDays.get(JSON.stringify([row.model, row.version]))!;
    if (row.kind === 'window') {
      // Against the first and last day with any committed metrics, so a missing day is not taken for a new version.
      if (span.first > dataSpan.first && span.first >= row.window_start && span.first <= row.window_end) row.notes.push(`first day of ${row.version}: ${span.first}`);
      if (span.last < dataSpan.last && span.last >= row.window_start && span.last <= row.window_end) row.notes.push(`last day of ${row.version}: ${span.last}`);
      const before = previous.get(seriesId(row));
      if (before !== undefined) {
        if (before.coverage !== null && row.coverage !== null && Math.abs(row.coverage - before.coverage) >= COVERAGE_NOTE_CHANGE) {
          row.notes.push(`coverage ${percent(before.coverage)} → ${percent(row.coverage)} (${signed((row.coverage - before.coverage) * 100, 3)} pp)`);
        }
        const [was, now] = [before.label_delay_p95_s, row.label_delay_p95_s];
        if (was !== null && now !== null && Math.abs(now - was) >= LABEL_DELAY_NOTE_MIN_S && (now >= was * LABEL_DELAY_NOTE_FACTOR || was >= now * LABEL_DELAY_NOTE_FACTOR)) {
          row.notes.push(`label delay p95 ${humanDuration(was)} → ${humanDuration(now)}`);
        }
      }
      previous.set(seriesId(row), row);
    }
    const sameWindow = byWindow.get(windowId(row))!;
    const final = sameWindow.find((r) => r.stage === 'final');
    const preliminary = sameWindow.find((r) => r.stage === 'preliminary');
    // With --stage preliminary every row is one, and its label age has its own column.
    if (row.stage === 'preliminary' && row.label_age_s !== null && final === undefined && request.stage === 'both') {
      row.notes.push(`preliminary only: labels through ${humanDuration(row.label_age_s)} after the day`);
    }
    if (row.stage === 'final' && preliminary !== undefined && preliminary.days === row.days) restate(row, preliminary);
  }
}

/** Writes the restatement of a final against the preliminary of the same window onto the final row. */
function restate(final: ReportRow, preliminary: ReportRow): void {
  if (final.mse === null || preliminary.mse === null) return;
  const delta = final.mse - preliminary.mse;
  final.restated_mse_delta = delta;
  const covered = preliminary.mse_ci_low === null || preliminary.mse_ci_high === null ? null : preliminary.mse_ci_low <= final.mse && final.mse <= preliminary.mse_ci_high;
  final.preliminary_ci_covers_final = covered;
  if (delta === 0) {
    final.notes.push('final = preliminary');
    return;
  }
  const relative = preliminary.mse === 0 ? '' : ` (${signed((delta / preliminary.mse) * 100, 3)}%)`;
  const ci = covered === null ? 'the preliminary had no CI' : covered ? "within the preliminary's CI" : "outside the preliminary's CI";
  final.notes.push(`restated: MSE ${preliminary.mse.toPrecision(4)} → ${final.mse.toPrecision(4)}, Δ ${signed(delta)}${relative}, ${ci}`);
}

function missingRow(date: string, stage: Stage): ReportRow {
  return {
    kind: 'missing', model: null, version: null, slice: null, window: date, window_start: date, window_end: date, stage, days: 0,
    count: null, labeled: null, coverage: null, mse: null, mse_ci_low: null, mse_ci_high: null, rmse: null, mae: null, mae_ci_low: null, mae_ci_high: null,
    mape: null, bias: null, r2: null, label_delay_p95_s: null, label_age_s: null, restated_mse_delta: null, preliminary_ci_covers_final: null,
    notes: [`no committed ${stage} metrics`],
  };
}

/** Rows of a set of records: one per window, and one per series over the range when it spans several windows. */
function rowsOf(records: readonly LoadedRecord[], request: ReportRequest, withTotals: boolean): ReportRow[] {
  const windowRows = groupRecords(records, (date) => windowOf(date, request.by), 'window').map(rowOf);
  for (const row of windowRows) {
    const inRange = dateRange(row.window_start < request.from ? request.from : row.window_start, row.window_end > request.to ? request.to : row.window_end).length;
    const full = dateRange(row.window_start, row.window_end).length;
    if (inRange < full) row.notes.push(`${inRange} of ${full} days inside --from..--to`);
  }
  const rows = [...windowRows];
  if (withTotals) {
    const windowsPerSeries = new Map<string, number>();
    for (const row of windowRows) windowsPerSeries.set(seriesId(row), (windowsPerSeries.get(seriesId(row)) ?? 0) + 1);
    const range = { label: 'total', start: request.from, end: request.to };
    for (const group of groupRecords(records, () => range, 'range')) {
      const row = rowOf(group);
      if ((windowsPerSeries.get(seriesId(row)) ?? 0) > 1) rows.push(row);
    }
  }
  return rows.sort(compareRows);
}

/** Which records the request's --model and --slice select, and whether a record is a label-age one. */
function selection(request: ReportRequest): { model: (r: ReportMetricsRecord) => boolean; slice: (r: ReportMetricsRecord) => boolean } {
  return {
    model: (r) => request.model === undefined || (r.model_name === request.model.name && (request.model.version === undefined || r.model_version === request.model.version)),
    slice: (r) => {
      const keys = Object.keys(r.slice_keys);
      if (request.slice === undefined) return keys.length === 0;
      return keys.length === 1 && keys[0] === request.slice.key && (request.slice.value === undefined || r.slice_keys[request.slice.key] === request.slice.value);
    },
  };
}

/** Fails with what exists when --model or --slice matched nothing, so a typo is not an empty report. */
function checkSelection(request: ReportRequest, all: readonly LoadedRecord[], selected: readonly LoadedRecord[]): void {
  if (selected.length > 0) return;
  const seen = (f: (r: ReportMetricsRecord) => string | undefined): string => [...new Set(all.map((l) => f(l.record)).filter((x) => x !== undefined))].sort().slice(0, 20).join(', ') || 'none';
  if (request.model !== undefined && !all.some((l) => selection(request).model(l.record))) {
    throw new UsageError(`--model ${request.model.name}${request.model.version === undefined ? '' : `@${request.model.version}`} has no metrics in ${request.from}..${request.to}; models there: ${seen((r) => `${r.model_name}@${r.model_version}`)}`, { option: '--model' });
  }
  if (request.slice !== undefined) {
    throw new UsageError(
      `--slice ${request.slice.key}${request.slice.value === undefined ? '' : `=${request.slice.value}`} matches no slice in ${request.from}..${request.to}; slices there: ${seen((r) => (Object.keys(r.slice_keys).length === 0 ? undefined : sliceName(r.slice_keys)))}`,
      { option: '--slice' },
    );
  }
}

/** Label maturity points: label-age records of the selected slices, rolled up over the range per age. */
function maturityOf(records: readonly LoadedRecord[]): MaturityPoint[] {
  const groups = new Map<string, { key: Omit<MaturityPoint, 'days' | 'labeled' | 'coverage' | 'mse' | 'mse_ci_low' | 'mse_ci_high'>; records: LoadedRecord[] }>();
  for (const loaded of records) {
    const r = loaded.record;
    const slice = sliceName(r.slice_keys);
    const id = JSON.stringify([r.model_name, r.model_version, slice, loaded.stage, r.label_age_s]);
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { key: { model: r.model_name, version: r.model_version, slice, stage: loaded.stage, label_age_s: r.label_age_s! }, records: [] }));
    group.records.push(loaded);
  }
  return [...groups.values()]
    .map(({ key, records: list }) => {
      const m = rollUp(list.map((l) => l.record));
      return { ...key, days: new Set(list.map((l) => l.date)).size, labeled: m.labeled_count, coverage: m.missing_label_rate === null ? null : 1 - m.missing_label_rate, mse: m.mse, mse_ci_low: m.mse_ci_low, mse_ci_high: m.mse_ci_high };
    })
    .sort((a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version) || a.slice.localeCompare(b.slice) || a.stage.localeCompare(b.stage) || a.label_age_s - b.label_age_s);
}

/** Reads the range's committed metrics and builds the report; NotFoundError (exit 1) naming the metrics URI and the range when none are committed. */
export async function buildReport(metrics: ObjectStore, request: ReportRequest): Promise<Report> {
  const dates = dateRange(request.from, request.to);
  const stages: Stage[] = request.stage === 'both' ? ['preliminary', 'final'] : [request.stage];
  const select = selection(request);
  const loaded = await loadMetrics(metrics, dates, stages, () => true);
  const metricsUri = metrics.uriOf('');
  if (loaded.records.length === 0 && loaded.missing.length === dates.length * stages.length) {
    throw new NotFoundError(
      `no committed ${stages.join(' or ')} metrics under ${metricsUri} for ${request.from}..${request.to}; run \`model-metrics backfill --from ${request.from} --to ${request.to} --stage ${stages[0]}\` first, or check --root / --metrics`,
      { uri: metricsUri, from: request.from, to: request.to },
    );
  }
  const ordinary = loaded.records.filter((l) => l.kind === 'day');
  const ofModel = ordinary.filter((l) => select.model(l.record));
  const selected = ofModel.filter((l) => select.slice(l.record));
  checkSelection(request, ordinary, selected);

  const versionDays = new Map<string, { first: string; last: string }>();
  for (const l of ordinary) {
    const id = JSON.stringify([l.record.model_name, l.record.model_version]);
    const span = versionDays.get(id);
    if (span === undefined) versionDays.set(id, { first: l.date, last: l.date });
    else versionDays.set(id, { first: l.date < span.first ? l.date : span.first, last: l.date > span.last ? l.date : span.last });
  }
  const rows = rowsOf(selected, request, true);
  annotate(rows, request, versionDays);
  const segmentRows = request.slice === undefined ? rowsOf(ofModel.filter((l) => Object.keys(l.record.slice_keys).length === 1), request, false) : [];
  annotate(segmentRows, request, versionDays);
  const maturity = maturityOf(loaded.records.filter((l) => l.kind === 'label_age' && select.model(l.record) && select.slice(l.record)));
  return {
    metrics_uri: metricsUri,
    from: request.from,
    to: request.to,
    stage: request.stage,
    by: request.by,
    slice: request.slice === undefined ? null : `${request.slice.key}${request.slice.value === undefined ? '' : `=${request.slice.value}`}`,
    model: request.model === undefined ? null : `${request.model.name}${request.model.version === undefined ? '' : `@${request.model.version}`}`,
    rows: [...rows, ...loaded.missing.map((m) => missingRow(m.date, m.stage))],
    missing: loaded.missing,
    segment_rows: segmentRows,
    maturity,
    notes: reportNotes(loaded.records),
  };
}

/** The report-wide notes: which dates are metrics v1 and which v2 when both occur, and hourly records left out of the day rows. */
function reportNotes(records: readonly LoadedRecord[]): string[] {
  const notes: string[] = [];
  const datesOf = (version: 1 | 2): string[] => [...new Set(records.filter((r) => r.metricsVersion === version).map((r) => r.date))].sort();
  const [v1, v2] = [datesOf(1), datesOf(2)];
  if (v1.length > 0 && v2.length > 0) {
    notes.push(
      `metrics v1 and v2 partitions mixed: v1 (sums rounded once, no label-age records) for ${dateRanges(v1)}, v2 for ${dateRanges(v2)}; roll-ups over both are exact only to the v1 rounding, and the label maturity curve covers the v2 days alone`,
    );
  }
  const hourly = records.filter((r) => r.kind === 'hour').length;
  if (hourly > 0) notes.push(`${hourly} hourly record(s) (--windows PT1H) are not day rows and are left out of this report`);
  return notes;
}
