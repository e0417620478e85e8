/**
 * Roll-ups for the report (SPEC §7): every figure of a week, a month or a range comes from the daily
 * sufficient statistics, added as double words (SPEC §5.1 `sum_X + sum_X_lo`; a v1 record's
 * companion is 0), then put through the same formulas as a daily record. Never an average of
 * daily metrics.
 */
import { DateTime } from 'luxon';
import { CompensatedSum, dw } from '../metrics/compensated.js';
import { type DerivedMetrics, metricsFromSums } from '../metrics/formulas.js';
import { SUM_FIELDS, type ReportMetricsRecord } from './metrics-reader.js';

/** Unit roundoff of binary64. */
const UNIT_ROUNDOFF = 2 ** -53;

/** The counts and metrics of a set of daily records. */
export interface RolledUp extends DerivedMetrics {
  count: number;
  labeled_count: number;
  /** The highest daily p95 label delay: quantiles do not add up, so a roll-up shows its worst day. */
  label_delay_p95_s: number | null;
}

/** Rolls records of one slice up exactly from their sums. */
export function rollUp(records: readonly ReportMetricsRecord[]): RolledUp {
  let count = 0;
  let labeled = 0;
  let mapeCount = 0;
  let allExact = true;
  let delayP95: number | null = null;
  const sums = SUM_FIELDS.map(() => new CompensatedSum());
  for (const r of records) {
    count += r.count;
    labeled += r.labeled_count;
    mapeCount += r.mape_count;
    SUM_FIELDS.forEach((field, i) => sums[i]!.addSum(dw(r[field], r[`${field}_lo`])));
    // A v1 record (every companion 0 while its sum is not exactly representable is the common case)
    // carries one rounding of each sum; a v2 record's pair is exact to ~2^-106.
    if (SUM_FIELDS.every((field) => r[`${field}_lo`] === 0)) allExact = false;
    if (r.label_delay_p95_s !== null && (delayP95 === null || r.label_delay_p95_s > delayP95)) delayP95 = r.label_delay_p95_s;
  }
  const [sumError, sumSq, sumAbs, sumQuad, sumApe, sumY, sumSqY] = sums as [CompensatedSum, CompensatedSum, CompensatedSum, CompensatedSum, CompensatedSum, CompensatedSum, CompensatedSum];
  const derived = metricsFromSums({
    count,
    labeled_count: labeled,
    mape_count: mapeCount,
    sum_error: sumError,
    sum_sq_error: sumSq,
    sum_abs_error: sumAbs,
    sum_quad_error: sumQuad,
    sum_ape: sumApe,
    sum_y_true: sumY,
    sum_sq_y_true: sumSqY,
    // Same bound as rollupMetrics for once-rounded v1 sums; exact pairs keep the accumulator's default.
    ...(allExact && records.length > 0 ? {} : { sum_relative_error: UNIT_ROUNDOFF + 4 * labeled * UNIT_ROUNDOFF * UNIT_ROUNDOFF }),
  });
  return { count, labeled_count: labeled, label_delay_p95_s: delayP95, ...derived };
}

/** The window grains of `report --by`. */
export const reportGrains = ['day', 'week', 'month'] as const;
/** One of reportGrains. */
export type ReportGrain = (typeof reportGrains)[number];

/** A report window: its label and its first and last calendar day. */
export interface ReportWindow {
  label: string;
  start: string;
  end: string;
}

/** The window of a date: the day itself, its ISO week (Monday to Sunday, `2026-W10`) or its month (`2026-03`). */
export function windowOf(date: string, grain: ReportGrain): ReportWindow {
  if (grain === 'day') return { label: date, start: date, end: date };
  const day = DateTime.fromISO(date, { zone: 'utc' });
  if (grain === 'week') {
    const monday = day.startOf('week');
    return { label: `${day.weekYear}-W${String(day.weekNumber).padStart(2, '0')}`, start: monday.toISODate()!, end: monday.plus({ days: 6 }).toISODate()! };
  }
  const first = day.startOf('month');
  return { label: date.slice(0, 7), start: first.toISODate()!, end: first.endOf('month').toISODate()! };
}
