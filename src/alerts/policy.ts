/**
 * The alert policy of SPEC §8 as pure functions: a day's metrics records against the rolling
 * baseline of the same slices' final records of the previous days, with the gating rules
 * (`--alert-min-labeled`, `--baseline-min-days`) and the `sigma` and `pct` rules. No I/O: the
 * caller reads the records (src/alerts/step.ts), so every rule is tested on synthetic histories.
 *
 * Preliminary runs are compared at equal label age: against the baseline days' label-age records
 * (metrics v2, SPEC §5.1, field `label_age_s`) at the largest age not above the run's own, never
 * against finals, whose labels had the whole window to arrive and would make every young
 * preliminary look degraded. One age serves every baseline day of a slice, so mean and sd are over
 * values of one maturity: the largest age not above the run's own that at least
 * `--baseline-min-days` baseline days hold (so an age added to `--label-ages` lately is used once
 * enough days have it), else the largest age outright; days below `--alert-min-labeled` at that
 * age then do not count, and too few counted days skip the slice as too_few_baseline_days. Days
 * holding no label-age record at all (metrics v1 partitions, or finals written before label ages)
 * count for no preliminary and are named in the evaluation.
 *
 * Only day-window records take part: metrics v2 also writes hourly records (`--windows`), which
 * are neither compared nor part of a baseline, and a final is compared with the ordinary records
 * (label_age_s null) of the baseline days only.
 */
import { dayWindow } from '../join/policy.js';

import { ALERT_METRICS, ALERT_RULES, type AlertMetric, type AlertRuleName, type AlertRules, type AlertSettings } from './defaults.js';

/** Whether a record of a baseline day (day window `window`) is one of its label-age records (SPEC §5.1). */
export function isDayLabelAgeRecord(record: AlertInputRecord, window: { startMicros: number; endMicros: number }): boolean {
  return isLabelAgeRecord(record) && record.window_start_ts === window.startMicros && record.window_end_ts === window.endMicros;
}

/** The fields of a metrics record the policy reads (a ModelMetrics v1 or v2 record has them all). */
export interface AlertInputRecord {
  window_start_ts: number;
  window_end_ts: number;
  model_name: string;
  model_version: string;
  slice_keys: Record<string, string>;
  labeled_count: number;
  missing_label_rate: number | null;
  mse: number | null;
  mae: number | null;
  /** Metrics v2 (SPEC §5.1): null or absent for the ordinary records, the label age in seconds otherwise. */
  label_age_s?: number | null;
}

/** One baseline day: its date and the records of its final partition. */
export interface BaselineDay {
  date: string;
  records: readonly AlertInputRecord[];
  /** Whether the day's partition holds any label-age record; default: whether `records` do (a reader that kept only some says so here). */
  holdsLabelAges?: boolean;
}

/** Why a slice was not compared. */
export const SKIP_REASONS = ['too_few_labeled', 'too_few_baseline_days', 'no_label_age_baseline'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** An Alert record (schemas/alert/v1.avsc). */
export interface AlertRecord {
  window_start_ts: number;
  window_end_ts: number;
  stage: 'PRELIMINARY' | 'FINAL';
  model_name: string;
  model_version: string;
  slice_keys: Record<string, string>;
  metric: AlertMetric;
  value: number;
  baseline_mean: number;
  baseline_sd: number;
  baseline_days: number;
  rule: AlertRuleName;
  threshold: number;
  labeled_count: number;
  /** The label age compared at (preliminary runs), null for finals. */
  label_age_s: number | null;
  message: string;
}

/** What the policy did with a day's records. */
export interface AlertEvaluation {
  alerts: AlertRecord[];
  /** Slices compared (each against every metric of its rules). */
  compared: number;
  /** Slices not compared, by reason. */
  skipped: Record<SkipReason, number>;
  /** Preliminary runs: the baseline days (dates, newest first) whose partition holds no label-age record; they count for no slice. Empty for finals. */
  baselineDaysWithoutLabelAges: string[];
}

/** The run being evaluated. */
export interface AlertRun {
  stage: 'preliminary' | 'final';
  /** The window of the day: only day-window records are compared (metrics v2 also writes hourly ones). */
  window: { startMicros: number; endMicros: number };
  /** A preliminary run's own label age, as_of − end of D in whole seconds (SPEC §5.1); ignored for finals. */
  labelAgeS: number;
}

/** The identity of a slice across days: model, version and the slice's sorted pairs. */
export function sliceId(record: Pick<AlertInputRecord, 'model_name' | 'model_version' | 'slice_keys'>): string {
  const pairs = Object.entries(record.slice_keys).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([record.model_name, record.model_version, pairs]);
}

/** The rules that apply to a model. */
export function rulesFor(settings: AlertSettings, model: string): AlertRules {
  return settings.models[model] ?? settings.defaults;
}

/** A metric's value in a record: mse, mae, or coverage = 1 − missing_label_rate; null when undefined. */
export function metricValue(record: AlertInputRecord, metric: AlertMetric): number | null {
  if (metric === 'coverage') return record.missing_label_rate === null ? null : 1 - record.missing_label_rate;
  return record[metric];
}

/** Sample mean and sd (n − 1) of at least two values. */
export function meanAndSd(values: readonly number[]): { mean: number; sd: number } {
  const n = values.length;
  // A flat series is its value exactly: 0.1 three times must not average to 0.10000000000000002.
  if (values.every((v) => v === values[0])) return { mean: values[0]!, sd: 0 };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  // Two passes: the deviations, not Σv² − n·mean², so a flat baseline gives sd exactly 0.
  const ss = values.reduce((s, v) => s + (v - mean) * (v - mean), 0);
  return { mean, sd: n > 1 ? Math.sqrt(ss / (n - 1)) : 0 };
}

/** Error metrics alert upward, coverage downward (SPEC §8). */
function isDownward(metric: AlertMetric): boolean {
  return metric === 'coverage';
}

/** The threshold of a rule, or undefined when the rule is off. */
export function ruleThreshold(rule: AlertRuleName, rules: AlertRules, metric: AlertMetric, mean: number, sd: number): number | undefined {
  const sign = isDownward(metric) ? -1 : 1;
  if (rule === 'sigma') return rules.sigma === null ? undefined : mean + sign * rules.sigma * sd;
  return rules.pct === null ? undefined : mean * (1 + sign * rules.pct);
}

/** Strictly beyond the threshold, in the metric's direction: a flat baseline alerts only on a real change. */
export function breaches(metric: AlertMetric, value: number, threshold: number): boolean {
  return isDownward(metric) ? value < threshold : value > threshold;
}

/** Whether a record is one of the label maturity curve (SPEC §5.1) rather than an ordinary one. */
function isLabelAgeRecord(record: AlertInputRecord): boolean {
  return record.label_age_s !== null && record.label_age_s !== undefined;
}

/**
 * Whether a record of a baseline day (whose day window is `window`) can take part in the run's
 * comparison: day-window records only; for a final its ordinary ones, for a preliminary also its
 * label-age ones not above the run's age. A reader keeps only these (and only the fields of
 * AlertInputRecord), so a baseline of many days stays small though metrics v2 files also hold
 * 24 hourly records and a label maturity curve per slice.
 */
export function usableInBaseline(record: AlertInputRecord, window: { startMicros: number; endMicros: number }, run: AlertRun): boolean {
  if (record.window_start_ts !== window.startMicros || record.window_end_ts !== window.endMicros) return false;
  if (!isLabelAgeRecord(record)) return true;
  return run.stage === 'preliminary' && (record.label_age_s as number) <= run.labelAgeS;
}

/** The fields of a metrics record the policy reads, and no more (what a baseline reader keeps). */
export function alertInputOf(record: AlertInputRecord): AlertInputRecord {
  const { window_start_ts, window_end_ts, model_name, model_version, slice_keys, labeled_count, missing_label_rate, mse, mae } = record;
  return { window_start_ts, window_end_ts, model_name, model_version, slice_keys, labeled_count, missing_label_rate, mse, mae, label_age_s: record.label_age_s ?? null };
}

/** The counted baseline of one slice: one record per counted day, and the label age compared at (null for finals). */
interface SliceBaseline {
  counted: AlertInputRecord[];
  labelAgeS: number | null;
}

/**
 * The baseline of one slice from its candidate records per baseline day (day-window ones only):
 * for a final, each day's ordinary record; for a preliminary, each day's label-age record at one
 * common age (see the header), or undefined when no day holds a label-age record at or below the
 * run's own age. Days below `minLabeled` are left out.
 */
function sliceBaseline(days: readonly AlertInputRecord[][], run: AlertRun, settings: AlertSettings): SliceBaseline | undefined {
  const enough = (r: AlertInputRecord | undefined): r is AlertInputRecord => r !== undefined && r.labeled_count >= settings.minLabeled;
  if (run.stage === 'final') return { counted: days.map((candidates) => candidates.find((r) => !isLabelAgeRecord(r))).filter(enough), labelAgeS: null };
  const ages = [...new Set(days.flatMap((candidates) => candidates.filter(isLabelAgeRecord).map((r) => r.label_age_s as number)))].filter((age) => age <= run.labelAgeS).sort((a, b) => b - a);
  if (ages.length === 0) return undefined;
  const held = (age: number): AlertInputRecord[] => days.map((candidates) => candidates.find((r) => r.label_age_s === age)).filter((r): r is AlertInputRecord => r !== undefined);
  // Whether enough days hold an age decides it, not their labels: a day too thin at 6 hours must
  // not send the comparison down to 1 hour, where the baseline's labels are younger than the run's.
  const age = ages.find((a) => held(a).length >= settings.baselineMinDays) ?? ages[0]!;
  return { counted: held(age).filter(enough), labelAgeS: age };
}

/** A label age in seconds as an ISO-8601 duration, as `--label-ages` spells it (21600 → PT6H, 93600 → P1DT2H). */
export function formatLabelAge(seconds: number): string {
  if (seconds < 0) return `-${formatLabelAge(-seconds)}`;
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const time = `${h > 0 ? `${h}H` : ''}${m > 0 ? `${m}M` : ''}${s > 0 ? `${s}S` : ''}`;
  return `P${d > 0 ? `${d}D` : ''}${time === '' ? (d > 0 ? '' : 'T0S') : `T${time}`}`;
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

function describeSlice(record: AlertRecord): string {
  const pairs = Object.entries(record.slice_keys);
  const slice = pairs.length === 0 ? 'all' : pairs.map(([k, v]) => `${k}=${v}`).join(',');
  return `${record.model_name}@${record.model_version} [${slice}]`;
}

/** The one-line message of an alert, as a person reads it in a log or a pager; `parameter` is the rule's k or p. */
function messageOf(a: Omit<AlertRecord, 'message'>, parameter: number): string {
  const down = isDownward(a.metric);
  const sign = down ? '−' : '+';
  const rule = a.rule === 'sigma' ? `mean ${sign} ${formatValue(parameter)}·sd (${formatValue(a.baseline_mean)} ${sign} ${formatValue(parameter)}·${formatValue(a.baseline_sd)})` : `mean·(1 ${sign} ${formatValue(parameter)}) (mean ${formatValue(a.baseline_mean)})`;
  const age = a.label_age_s === null ? 'finals' : `label age ${formatLabelAge(a.label_age_s)}`;
  return `${describeSlice({ ...a, message: '' })}: ${a.metric} ${formatValue(a.value)} is ${down ? 'below' : 'above'} ${formatValue(a.threshold)} = ${rule} over ${a.baseline_days} baseline day(s) at ${age} (rule ${a.rule})`;
}

/**
 * Compares every day-window, ordinary record of `day` with its baseline. Records in, alerts out,
 * sorted by input order of the slices, then metric, then rule, so the file is deterministic.
 */
export function evaluateAlerts(day: readonly AlertInputRecord[], baseline: readonly BaselineDay[], run: AlertRun, settings: AlertSettings): AlertEvaluation {
  const isDayWindow = (r: AlertInputRecord, window: { startMicros: number; endMicros: number }): boolean => r.window_start_ts === window.startMicros && r.window_end_ts === window.endMicros;
  // Per slice, per baseline day: that day's records usable for this run (ordinary, and label-age ones for a preliminary).
  const history = new Map<string, AlertInputRecord[][]>();
  const withoutLabelAges: string[] = [];
  baseline.forEach((b, index) => {
    const window = dayWindow(b.date);
    for (const r of b.records) {
      if (!usableInBaseline(r, window, run)) continue;
      const id = sliceId(r);
      let days = history.get(id);
      if (days === undefined) history.set(id, (days = baseline.map(() => [])));
      days[index]!.push(r);
    }
    if (!(b.holdsLabelAges ?? b.records.some((r) => isDayLabelAgeRecord(r, window)))) withoutLabelAges.push(b.date);
  });
  const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  const alerts: AlertRecord[] = [];
  let compared = 0;
  const stage = run.stage === 'final' ? 'FINAL' : 'PRELIMINARY';
  for (const record of day) {
    if (!isDayWindow(record, run.window) || isLabelAgeRecord(record)) continue;
    if (record.labeled_count < settings.minLabeled) {
      skipped.too_few_labeled++;
      continue;
    }
    const days = history.get(sliceId(record)) ?? [];
    const slice = sliceBaseline(days, run, settings);
    if (slice === undefined) {
      // A preliminary without a label-age record at or below its age: where finals of the slice
      // exist, comparing with them would be wrong, so the reason says so.
      if (days.some((candidates) => candidates.length > 0)) skipped.no_label_age_baseline++;
      else skipped.too_few_baseline_days++;
      continue;
    }
    const counted = slice.counted;
    if (counted.length < settings.baselineMinDays) {
      skipped.too_few_baseline_days++;
      continue;
    }
    compared++;
    const rules = rulesFor(settings, record.model_name);
    for (const metric of ALERT_METRICS) {
      if (!rules.metrics.includes(metric)) continue;
      const value = metricValue(record, metric);
      const values = counted.map((r) => metricValue(r, metric)).filter((v): v is number => v !== null);
      if (value === null || values.length < settings.baselineMinDays) continue;
      const { mean, sd } = meanAndSd(values);
      for (const rule of ALERT_RULES) {
        const threshold = ruleThreshold(rule, rules, metric, mean, sd);
        if (threshold === undefined || !breaches(metric, value, threshold)) continue;
        const alert = {
          window_start_ts: record.window_start_ts,
          window_end_ts: record.window_end_ts,
          stage,
          model_name: record.model_name,
          model_version: record.model_version,
          slice_keys: record.slice_keys,
          metric,
          value,
          baseline_mean: mean,
          baseline_sd: sd,
          baseline_days: values.length,
          rule,
          threshold,
          labeled_count: record.labeled_count,
          label_age_s: slice.labelAgeS,
        } as const;
        alerts.push({ ...alert, message: messageOf(alert, (rule === 'sigma' ? rules.sigma : rules.pct) as number) });
      }
    }
  }
  return { alerts, compared, skipped, baselineDaysWithoutLabelAges: run.stage === 'preliminary' ? withoutLabelAges : [] };
}
