/**
 * The pure rules of the join (SPEC §3): which label wins for a prediction, the day window, the
 * cutoffs of both stages, and which label partitions a run must read. No I/O, no clock: the
 * caller passes "now" in, so every rule is unit-tested directly and reruns are reproducible.
 *
 * Time is microseconds since the Unix epoch held in a double (Avro `timestamp-micros`), exact for
 * integers up to 2^53, i.e. until about the year 2255; inputs past that range are refused.
 */
import { DateTime, Duration } from 'luxon';
import { ModelMetricsError, UsageError } from '../errors.js';
import type { LabelChains } from './label-index.js';

const MICROS_PER_MILLI = 1000;
const MICROS_PER_DAY = 86_400_000_000;

/** The outcome of chooseLabel; one object is reused for every prediction, so nothing is allocated per call. */
export interface LabelChoice {
  /** Winning label number in the chains, or -1 when no label is usable. */
  winner: number;
  /** Labels with finite y_true and label_ts <= cutoff; `usableCount - 1` of them lost (duplicate_label_count). */
  usableCount: number;
  /** Labels with non-finite y_true and label_ts <= cutoff (invalid_count); later ones are not counted. */
  invalidCount: number;
}

/** A fresh LabelChoice to reuse across calls of chooseLabel. */
export function newLabelChoice(): LabelChoice {
  return { winner: -1, usableCount: 0, invalidCount: 0 };
}

/**
 * Among the chain starting at head: the usable label (finite y_true, label_ts <= cutoff) with the
 * latest label_ts; on a tie the one later in (object key, record) order, i.e. the larger index.
 * Labels past the cutoff are ignored entirely, valid or not (SPEC §3: they change nothing).
 */
export function chooseLabel(index: LabelChains, head: number, cutoffMicros: number, out: LabelChoice): LabelChoice {
  let winner = -1;
  let winnerTs = 0;
  let usable = 0;
  let invalid = 0;
  for (let label = head; label >= 0; label = index.next(label)) {
    const ts = index.labelTs(label);
    if (!(ts <= cutoffMicros)) continue;
    if (!Number.isFinite(index.yTrue(label))) {
      invalid++;
      continue;
    }
    usable++;
    // Chains descend in index, but the tie rule compares indexes so it does not depend on that.
    if (winner < 0 || ts > winnerTs || (ts === winnerTs && label > winner)) {
      winner = label;
      winnerTs = ts;
    }
  }
  out.winner = winner;
  out.usableCount = usable;
  out.invalidCount = invalid;
  return out;
}

/** A UTC day D as the half-open interval [D 00:00, D+1 00:00) in microseconds. */
export interface DayWindow {
  /** The day as YYYY-MM-DD. */
  date: string;
  /** D 00:00 UTC. */
  startMicros: number;
  /** D+1 00:00 UTC, exclusive. */
  endMicros: number;
}

/** The UTC day window of a YYYY-MM-DD date; UsageError naming `option` when it is not a real calendar date. */
export function dayWindow(date: string, option = '--date'): DayWindow {
  // Only the extended calendar form: luxon alone would also take 20250101, week and ordinal dates.
  if (typeof date !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    throw new UsageError(`${option} must be a date as YYYY-MM-DD (e.g. 2026-01-31), got ${JSON.stringify(date)}`, { option });
  }
  const start = DateTime.fromISO(date, { zone: 'utc' });
  if (!start.isValid) {
    throw new UsageError(`${option} ${date} is not a calendar date (${start.invalidExplanation ?? start.invalidReason ?? 'invalid'}); expected YYYY-MM-DD with a real month and day, e.g. 2026-01-31`, {
      option,
    });
  }
  const startMicros = start.toMillis() * MICROS_PER_MILLI;
  const endMicros = startMicros + MICROS_PER_DAY;
  if (!Number.isSafeInteger(startMicros) || !Number.isSafeInteger(endMicros)) {
    throw new UsageError(`${option} ${date} is outside the range of microsecond timestamps (about 1685-2255)`, { option });
  }
  return { date, startMicros, endMicros };
}

/**
 * Parses `--label-window`, an ISO-8601 duration made of fixed-length units only (weeks, days,
 * hours, minutes, seconds: P7D, PT36H, P1W, P2DT12H). Months and years are refused because they
 * have no fixed length, so "the window closed" would depend on the calendar. Returns the text as
 * given (it goes into output metadata) and its length in microseconds.
 */
export function parseLabelWindow(iso: string): { iso: string; micros: number } {
  const option = '--label-window';
  const shape = 'an ISO-8601 duration in weeks, days, hours, minutes or seconds, e.g. P7D, PT36H, P2DT12H';
  if (typeof iso !== 'string') {
    throw new UsageError(`${option} must be ${shape}; got ${JSON.stringify(iso)}`, { option });
  }
  const duration = Duration.fromISO(iso);
  if (!duration.isValid) {
    throw new UsageError(`${option} must be ${shape}; got ${JSON.stringify(iso)}`, { option });
  }
  const parts = duration.toObject();
  if (Object.keys(parts).length === 0) {
    // Luxon takes a bare "P" or "PT" as an empty duration; ISO 8601 wants at least one component.
    throw new UsageError(`${option} must be ${shape}; got ${JSON.stringify(iso)}`, { option });
  }
  if ((parts.years ?? 0) !== 0 || (parts.quarters ?? 0) !== 0 || (parts.months ?? 0) !== 0) {
    throw new UsageError(`${option} ${iso} uses months or years, which have no fixed length; use days, e.g. P30D`, { option });
  }
  if (Object.values(parts).some((value) => value < 0)) {
    throw new UsageError(`${option} ${iso} is negative; the window must be a positive duration, e.g. P7D`, { option });
  }
  // Luxon keeps milliseconds; a finer seconds fraction would be dropped silently, so refuse it.
  if (/[.,]\d{4,}S$/i.test(iso)) {
    throw new UsageError(`${option} ${iso} is finer than milliseconds; round it, e.g. PT0.5S`, { option });
  }
  const micros = Math.round(duration.toMillis() * MICROS_PER_MILLI);
  if (!(micros > 0)) {
    throw new UsageError(`${option} ${iso} is zero; the window must be a positive duration, e.g. P7D`, { option });
  }
  if (!Number.isSafeInteger(micros) || micros > MICROS_PER_DAY * 36_500) {
    throw new UsageError(`${option} ${iso} is longer than 100 years; use a window of days, e.g. P30D`, { option });
  }
  return { iso, micros };
}

/**
 * The final-stage cutoff of one prediction: inference_ts + label window (SPEC §3), capped at the
 * day's close (end of D + window, `finalReadyAtMicros`) so that a misplaced prediction stamped
 * after D cannot make a final depend on when it ran (README, contract notes).
 */
export function finalCutoffMicros(inferenceTsMicros: number, windowMicros: number, closeMicros: number): number {
  return Math.min(inferenceTsMicros + windowMicros, closeMicros);
}

/** When a final run for the day may start: end of D + label window; also its labels_through_ts (SPEC §3, §5). */
export function finalReadyAtMicros(day: DayWindow, windowMicros: number): number {
  return day.endMicros + windowMicros;
}

/**
 * The label partitions a run reads (SPEC §3): dt = D through the UTC date of the latest possible
 * cutoff, inclusive (a cutoff at exactly midnight includes labels of that new day at 00:00:00).
 * Empty when the latest cutoff is before D starts: no label can be usable.
 */
export function labelPartitionDates(day: DayWindow, latestCutoffMicros: number): string[] {
  if (!(latestCutoffMicros >= day.startMicros)) return [];
  const first = Math.floor(day.startMicros / MICROS_PER_DAY);
  const last = Math.floor(latestCutoffMicros / MICROS_PER_DAY);
  const dates: string[] = [];
  for (let dayNumber = first; dayNumber <= last; dayNumber++) {
    dates.push(DateTime.fromMillis((dayNumber * MICROS_PER_DAY) / MICROS_PER_MILLI, { zone: 'utc' }).toFormat('yyyy-MM-dd'));
  }
  return dates;
}

/**
 * An ISO-8601 instant (`2026-01-02T03:04:05.123456Z`, `2026-01-02T05:04:05+02:00`) as microseconds.
 * A zone (Z or an offset) is required: a zoneless time would silently mean the machine's local
 * time. Fractions finer than a microsecond are truncated (Avro timestamp-micros cannot hold them).
 */
export function parseTimestamp(text: string, option: string): number {
  const example = 'e.g. 2026-01-31T00:00:00Z or 2026-01-31T02:00:00+02:00';
  if (typeof text !== 'string' || !/^\d{4}-?\d{2}-?\d{2}T/i.test(text)) {
    throw new UsageError(`${option} must be an ISO-8601 date and time with a zone, ${example}; got ${JSON.stringify(text)}`, { option });
  }
  if (!/(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(text)) {
    throw new UsageError(`${option} ${text} has no time zone, so it would mean the machine's local time; add Z for UTC or an offset, ${example}`, { option });
  }
  // Luxon keeps milliseconds; split a seconds fraction off and add it back at microsecond precision.
  let whole = text;
  let fractionMicros = 0;
  const fraction = /^(.*T(?:\d{2}:\d{2}:\d{2}|\d{6}))[.,](\d+)(Z|[+-]\d{2}(?::?\d{2})?)$/i.exec(text);
  if (fraction !== null) {
    whole = fraction[1]! + fraction[3]!;
    fractionMicros = Number(fraction[2]!.slice(0, 6).padEnd(6, '0'));
  }
  const parsed = DateTime.fromISO(whole, { zone: 'utc' });
  if (!parsed.isValid) {
    throw new UsageError(`${option} ${text} is not a valid date and time (${parsed.invalidExplanation ?? parsed.invalidReason ?? 'invalid'}); ${example}`, { option });
  }
  const micros = parsed.toMillis() * MICROS_PER_MILLI + fractionMicros;
  if (!Number.isSafeInteger(micros)) {
    throw new UsageError(`${option} ${text} is outside the range of microsecond timestamps (about 1685-2255)`, { option });
  }
  return micros;
}

/** Microseconds as an ISO-8601 UTC instant: seconds precision, plus six fraction digits when non-zero. */
export function formatMicros(micros: number): string {
  if (!Number.isSafeInteger(micros)) {
    throw new ModelMetricsError('E_INTERNAL', `formatMicros expects whole microseconds below 2^53, got ${micros}`, { operation: 'formatMicros' });
  }
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = micros - seconds * 1_000_000;
  const text = DateTime.fromSeconds(seconds, { zone: 'utc' }).toFormat("yyyy-MM-dd'T'HH:mm:ss");
  return fraction === 0 ? `${text}Z` : `${text}.${String(fraction).padStart(6, '0')}Z`;
}
