/**
 * The one home of calendar rules (issue 10): UTC calendar days as YYYY-MM-DD, their windows in
 * microseconds, ISO-8601 instants, and date ranges, all UTC (luxon), no clock. Callers take them
 * from here. The day window and the instant parsing and formatting are still written in
 * join/policy.ts (another owner's file) and re-exported here; their bodies move here, with
 * policy.ts importing them, in one step with that file's owner. Elsewhere, still to fold in:
 * report/rollup.ts windowOf (ISO weeks, months) and cli/report-view.ts's test for consecutive days.
 */
import { DateTime } from 'luxon';
import { UsageError } from './errors.js';
import { dayWindow } from './join/policy.js';

export { type DayWindow, dayWindow, formatMicros, parseTimestamp } from './join/policy.js';

/** The most days one command may span: ten years, so a typo such as 2062 fails fast. */
export const MAX_RANGE_DAYS = 3660;

/** The UTC date `days` after `date` (negative for before). */
export function addDays(date: string, days: number): string {
  return DateTime.fromISO(date, { zone: 'utc' }).plus({ days }).toISODate()!;
}

/** The UTC date of an instant in microseconds. */
export function dateOfMicros(micros: number): string {
  return DateTime.fromMillis(Math.floor(micros / 1000), { zone: 'utc' }).toISODate()!;
}

/** Validates a YYYY-MM-DD date, naming the option it came from. */
export function checkDate(date: string, option: string): void {
  try {
    dayWindow(date);
  } catch (error) {
    throw new UsageError(`${option} must be a real calendar date YYYY-MM-DD, got ${JSON.stringify(date)}`, { option }, { cause: error });
  }
}

/** Every date from `from` to `to` inclusive; UsageError naming the options when reversed or too long. */
export function dateRange(from: string, to: string, options: { from: string; to: string } = { from: '--from', to: '--to' }): string[] {
  checkDate(from, options.from);
  checkDate(to, options.to);
  const start = DateTime.fromISO(from, { zone: 'utc' });
  const end = DateTime.fromISO(to, { zone: 'utc' });
  const days = Math.round(end.diff(start, 'days').days);
  if (days < 0) throw new UsageError(`${options.from} ${from} is after ${options.to} ${to}; swap them`, { option: options.from });
  if (days + 1 > MAX_RANGE_DAYS) throw new UsageError(`${options.from}..${options.to} spans ${days + 1} days, more than the ${MAX_RANGE_DAYS} allowed; split the range`, { option: options.to });
  return Array.from({ length: days + 1 }, (_, i) => addDays(from, i));
}
