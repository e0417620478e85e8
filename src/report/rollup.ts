/**
 * Roll-ups for the report (SPEC §7): every figure of a week, a month or a range comes from the daily
 * sufficient statistics through `rollupMetrics`, the one roll-up of the metrics formulas; each record
 * passes its SPEC §5.1 `sum_X_lo` companions along (a v1 record's are 0). Never an average of daily
 * metrics.
 */
import { DateTime } from 'luxon';
import { type DerivedMetrics, rollupMetrics } from '../metrics/formulas.js';
import type { ReportMetricsRecord } from './metrics-reader.js';

/** The counts and metrics of a set of daily records. */
export interface RolledUp extends DerivedMetrics {
  count: number;
  labeled_count: number;
  /** The highest daily p95 label delay: quantiles do not add up, so a roll-up shows its worst day. */
  label_delay_p95_s: number | null;
}

/** Rolls records of one slice up exactly from their sums. */
export function rollUp(records: readonly ReportMetricsRecord[]): RolledUp {
  let delayP95: number | null = null;
  for (const r of records) {
    if (r.label_delay_p95_s !== null && (delayP95 === null || r.label_delay_p95_s > delayP95)) delayP95 = r.label_delay_p95_s;
  }
  // The records carry count, labeled_count, mape_count, every sum_X and sum_X_lo under the names rollupMetrics reads.
  return { ...rollupMetrics(records), label_delay_p95_s: delayP95 };
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
