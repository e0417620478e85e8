/**
 * The windows and label ages of SPEC §5.1 as pure values: parsing `--windows` and `--label-ages`,
 * and which ages a run writes. No I/O; the join (maturity.ts) and the slices use the results.
 *
 * - `--windows P1D,PT1H`: the day's records always; PT1H adds one record per hour of D per slice.
 * - `--label-ages PT1H,…` (or `none`): the maturity curve; a run writes the ages A whose instant
 *   end of D + A is at or before its own labels-through.
 */
import { Duration } from 'luxon';
import { UsageError } from '../errors.js';
import type { DayWindow } from './policy.js';

const MICROS_PER_SECOND = 1_000_000;
const SECONDS_PER_HOUR = 3600;
const SECONDS_PER_DAY = 86_400;
/** Hours of a UTC day (SPEC §3: days are UTC, so always 24). */
export const HOURS_PER_DAY = 24;
/** Most label ages: the join codes a prediction's age bucket in 5 bits (maturity.ts). */
export const MAX_LABEL_AGES = 30;

/** What --windows asks for besides the day's records. */
export interface WindowSettings {
  /** One record per hour of D per slice (PT1H). */
  hourly: boolean;
}

/**
 * A fixed-length ISO-8601 duration (weeks, days, hours, minutes, seconds) in whole seconds; a
 * UsageError naming `option` and the item otherwise.
 */
export function parseDurationSeconds(text: string, option: string): number {
  const example = 'e.g. PT1H, PT6H, P1D, P7D';
  const duration = Duration.fromISO(text);
  const parts = duration.isValid ? duration.toObject() : {};
  if (!duration.isValid || Object.keys(parts).length === 0) {
    throw new UsageError(`${option}: ${JSON.stringify(text)} is not an ISO-8601 duration in weeks, days, hours, minutes or seconds (${example})`, { option });
  }
  if ((parts.years ?? 0) !== 0 || (parts.quarters ?? 0) !== 0 || (parts.months ?? 0) !== 0) {
    throw new UsageError(`${option}: ${text} uses months or years, which have no fixed length; use days, e.g. P30D`, { option });
  }
  const seconds = duration.toMillis() / 1000;
  if (!Number.isSafeInteger(seconds)) {
    throw new UsageError(`${option}: ${text} is not a whole number of seconds (label ages and windows are in seconds); ${example}`, { option });
  }
  if (seconds <= 0) {
    throw new UsageError(`${option}: ${text} is ${seconds === 0 ? 'zero' : 'negative'}; give a positive duration, ${example}`, { option });
  }
  if (seconds > SECONDS_PER_DAY * 36_500) {
    throw new UsageError(`${option}: ${text} is longer than 100 years; ${example}`, { option });
  }
  return seconds;
}

/** The items of a list option: an array from a config file, or the comma-separated text of a flag or default. */
function listItems(value: string | readonly string[], option: string): string[] {
  const items = typeof value === 'string' ? value.split(',').map((item) => item.trim()) : [...value];
  if (items.length === 0 || items.some((item) => item === '')) {
    throw new UsageError(`${option}: expected a comma-separated list of ISO-8601 durations, got ${JSON.stringify(value)}`, { option });
  }
  return items;
}

/** `--windows`: P1D (required: the day's records are always written) and optionally PT1H. */
export function parseWindows(value: string | readonly string[]): WindowSettings {
  const option = '--windows';
  const seen = new Set<number>();
  for (const item of listItems(value, option)) {
    const seconds = parseDurationSeconds(item, option);
    if (seconds !== SECONDS_PER_DAY && seconds !== SECONDS_PER_HOUR) {
      throw new UsageError(`${option}: ${item} is not a supported window; the windows are P1D (the day) and PT1H (each hour of the day), e.g. --windows P1D,PT1H`, { option });
    }
    if (seen.has(seconds)) throw new UsageError(`${option} lists ${item} twice (${JSON.stringify(value)}); give each window once, e.g. P1D,PT1H`, { option });
    seen.add(seconds);
  }
  if (!seen.has(SECONDS_PER_DAY)) {
    throw new UsageError(`${option} ${JSON.stringify(value)} has no P1D: the day's records are always written, so list it, e.g. --windows P1D,PT1H`, { option });
  }
  return { hourly: seen.has(SECONDS_PER_HOUR) };
}

/** `--label-ages`: distinct positive durations in whole seconds, ascending; `none` for no label-age records. */
export function parseLabelAges(value: string | readonly string[]): number[] {
  const option = '--label-ages';
  const items = listItems(value, option);
  if (items.length === 1 && items[0]!.toLowerCase() === 'none') return [];
  const ages: number[] = [];
  const byAge = new Map<number, string>();
  for (const item of items) {
    if (item.toLowerCase() === 'none') throw new UsageError(`${option}: none disables label-age records and stands alone; got ${JSON.stringify(value)}`, { option });
    const seconds = parseDurationSeconds(item, option);
    const earlier = byAge.get(seconds);
    if (earlier !== undefined) {
      throw new UsageError(`${option} lists one age twice: ${earlier === item ? item : `${earlier} and ${item}`} (${seconds} s); give each age once`, { option });
    }
    byAge.set(seconds, item);
    ages.push(seconds);
  }
  if (ages.length > MAX_LABEL_AGES) throw new UsageError(`${option} lists ${ages.length} ages; at most ${MAX_LABEL_AGES} are supported`, { option });
  return ages.sort((a, b) => a - b);
}

/** The label ages (seconds, ascending) a run writes: those with end of D + A at or before its labels-through (SPEC §5.1). */
export function agesWritten(day: DayWindow, labelsThroughMicros: number, labelAgesSeconds: readonly number[]): number[] {
  return labelAgesSeconds.filter((age) => ageEndMicros(day, age) <= labelsThroughMicros);
}

/** end of D + A in microseconds: the labels-through of a label-age record. */
export function ageEndMicros(day: DayWindow, ageSeconds: number): number {
  return day.endMicros + ageSeconds * MICROS_PER_SECOND;
}

/** The hour of D (0–23) an inference_ts falls in, or -1 outside D (a misplaced prediction: day records only). */
export function hourOfDay(day: DayWindow, inferenceTsMicros: number): number {
  if (inferenceTsMicros < day.startMicros || inferenceTsMicros >= day.endMicros) return -1;
  return Math.floor((inferenceTsMicros - day.startMicros) / (SECONDS_PER_HOUR * MICROS_PER_SECOND));
}

/** The [start, end) of hour h of D in microseconds. */
export function hourWindow(day: DayWindow, hour: number): { startMicros: number; endMicros: number } {
  const startMicros = day.startMicros + hour * SECONDS_PER_HOUR * MICROS_PER_SECOND;
  return { startMicros, endMicros: startMicros + SECONDS_PER_HOUR * MICROS_PER_SECOND };
}
