import { describe, expect, it } from 'vitest';
import { LabelIndex } from '../../src/join/label-index.js';
import {
  chooseLabel,
  dayWindow,
  finalCutoffMicros,
  finalReadyAtMicros,
  formatMicros,
  labelPartitionDates,
  newLabelChoice,
  parseLabelWindow,
  parseTimestamp,
} from '../../src/join/policy.js';

const HOUR = 3_600_000_000;
const DAY = 24 * HOUR;
const JAN_1 = Date.UTC(2026, 0, 1) * 1000;

/** A LabelIndex holding `labels` for id "p" (in add order) plus noise under other ids. */
function indexOf(labels: Array<[yTrue: number, labelTs: number]>): LabelIndex {
  const index = new LabelIndex();
  index.add('other', 99, 0);
  for (const [yTrue, ts] of labels) {
    index.add('p', yTrue, ts);
    index.add('noise', 7, ts);
  }
  return index;
}

/** chooseLabel for id "p", with the winner as the position among `labels` (add order), -1 if none. */
function choose(labels: Array<[number, number]>, cutoff: number): { winner: number; usableCount: number; invalidCount: number } {
  const index = indexOf(labels);
  const out = chooseLabel(index, index.head('p'), cutoff, newLabelChoice());
  // Label indexes in the fixture: 0 is "other", then p and noise alternate.
  return { winner: out.winner < 0 ? -1 : (out.winner - 1) / 2, usableCount: out.usableCount, invalidCount: out.invalidCount };
}

describe('chooseLabel (SPEC §3)', () => {
  it('picks the usable label with the latest label_ts', () => {
    expect(choose([[1, 300], [2, 500], [3, 400]], 1000)).toEqual({ winner: 1, usableCount: 3, invalidCount: 0 });
  });

  it('breaks a label_ts tie by the later label in (object key, record) order', () => {
    expect(choose([[1, 500], [2, 500], [3, 400]], 1000)).toEqual({ winner: 1, usableCount: 3, invalidCount: 0 });
    expect(choose([[1, 500], [2, 400], [3, 500]], 1000)).toEqual({ winner: 2, usableCount: 3, invalidCount: 0 });
  });

  it('ignores labels past the cutoff, even the latest', () => {
    expect(choose([[1, 300], [2, 1001], [3, 400]], 1000)).toEqual({ winner: 2, usableCount: 2, invalidCount: 0 });
  });

  it('uses a label whose label_ts equals the cutoff', () => {
    expect(choose([[1, 300], [2, 1000]], 1000)).toEqual({ winner: 1, usableCount: 2, invalidCount: 0 });
  });

  it('counts non-finite y_true at or before the cutoff as invalid and never picks it', () => {
    expect(choose([[1, 300], [Number.NaN, 900], [Number.POSITIVE_INFINITY, 1000], [Number.NEGATIVE_INFINITY, 500]], 1000)).toEqual({
      winner: 0,
      usableCount: 1,
      invalidCount: 3,
    });
  });

  it('does not count non-finite y_true after the cutoff', () => {
    expect(choose([[1, 300], [Number.NaN, 1001], [Number.NEGATIVE_INFINITY, 5000]], 1000)).toEqual({ winner: 0, usableCount: 1, invalidCount: 0 });
  });

  it('gives no winner when only invalid labels are in time', () => {
    expect(choose([[Number.NaN, 10]], 1000)).toEqual({ winner: -1, usableCount: 0, invalidCount: 1 });
  });

  it('gives no winner without labels or when all labels are late', () => {
    const index = indexOf([]);
    expect(chooseLabel(index, index.head('p'), 1000, newLabelChoice())).toEqual({ winner: -1, usableCount: 0, invalidCount: 0 });
    expect(chooseLabel(index, -1, 1000, newLabelChoice())).toEqual({ winner: -1, usableCount: 0, invalidCount: 0 });
    expect(choose([[1, 2000], [2, 3000]], 1000)).toEqual({ winner: -1, usableCount: 0, invalidCount: 0 });
  });

  it('takes y_true 0 and negative label_ts as ordinary values', () => {
    expect(choose([[0, -5], [-3, -10]], -5)).toEqual({ winner: 0, usableCount: 2, invalidCount: 0 });
  });

  it('overwrites a reused result object completely', () => {
    const index = indexOf([[1, 300], [Number.NaN, 200]]);
    const out = newLabelChoice();
    chooseLabel(index, index.head('p'), 1000, out);
    expect(out).toEqual({ winner: 1, usableCount: 1, invalidCount: 1 });
    expect(chooseLabel(index, index.head('p'), 100, out)).toBe(out);
    expect(out).toEqual({ winner: -1, usableCount: 0, invalidCount: 0 });
  });
});

/** Runs fn and returns the error it throws (failing when it throws none). */
function thrown(fn: () => unknown): { code?: string; context?: { option?: string }; message: string } {
  try {
    fn();
  } catch (error) {
    return error as { code?: string; context?: { option?: string }; message: string };
  }
  throw new Error('expected an error');
}

describe('dayWindow', () => {
  it('is the UTC day [D 00:00, D+1 00:00) in microseconds', () => {
    expect(dayWindow('2026-01-01')).toEqual({ date: '2026-01-01', startMicros: JAN_1, endMicros: JAN_1 + DAY });
    expect(dayWindow('2024-02-29').startMicros).toBe(Date.UTC(2024, 1, 29) * 1000);
    expect(dayWindow('1970-01-01')).toEqual({ date: '1970-01-01', startMicros: 0, endMicros: DAY });
  });

  it.each(['2025-02-30', '2025-13-01', '2025-00-10', '2023-02-29', '25-01-01', '2025-1-1', '20250101', '2025-01-01T00:00:00Z', ' 2025-01-01', '', 'garbage', '9999-12-31'])(
    'rejects %j as a usage error naming the option',
    (bad) => {
      const error = thrown(() => dayWindow(bad));
      expect(error.code).toBe('E_USAGE');
      expect(error.context?.option).toBe('--date');
      expect(error.message).toContain('--date');
    },
  );

  it('names the option it was given', () => {
    expect(thrown(() => dayWindow('2025-02-30', '--from')).context?.option).toBe('--from');
  });
});

describe('parseLabelWindow', () => {
  it.each([
    ['P7D', 7 * DAY],
    ['PT36H', 36 * HOUR],
    ['P1W', 7 * DAY],
    ['P2DT12H', 60 * HOUR],
    ['PT90M', 90 * 60_000_000],
    ['PT1.5S', 1_500_000],
    ['P30D', 30 * DAY],
  ])('takes %s', (iso, micros) => {
    expect(parseLabelWindow(iso)).toEqual({ iso, micros });
  });

  it.each([
    ['P1M', /months or years.*P30D/],
    ['P1Y', /months or years.*P30D/],
    ['P1Y2D', /months or years/],
    ['P0D', /zero/],
    ['PT0S', /zero/],
    ['-P1D', /negative/],
    ['P-1D', /negative/],
    ['garbage', /ISO-8601 duration/],
    ['7D', /ISO-8601 duration/],
    ['P', /ISO-8601 duration/],
    ['PT', /ISO-8601 duration/],
    ['', /ISO-8601 duration/],
    ['PT0.0001S', /finer than milliseconds/],
    ['P100000D', /100 years/],
  ])('rejects %s', (iso, message) => {
    const error = thrown(() => parseLabelWindow(iso));
    expect(error.code).toBe('E_USAGE');
    expect(error.context?.option).toBe('--label-window');
    expect(error.message).toMatch(message);
  });
});

describe('cutoffs', () => {
  it('final cutoff is inference_ts + window; ready at end of D + window', () => {
    const day = dayWindow('2026-01-01');
    expect(finalCutoffMicros(JAN_1 + HOUR, 7 * DAY, Number.POSITIVE_INFINITY)).toBe(JAN_1 + HOUR + 7 * DAY);
    // capped at the day's close (end of D + window) for a prediction stamped after D
    expect(finalCutoffMicros(JAN_1 + 30 * HOUR, 7 * DAY, JAN_1 + 8 * DAY)).toBe(JAN_1 + 8 * DAY);
    expect(finalReadyAtMicros(day, 7 * DAY)).toBe(JAN_1 + 8 * DAY);
  });
});

describe('labelPartitionDates', () => {
  const day = dayWindow('2026-01-30');
  const start = day.startMicros;

  it('runs from D through the UTC date of the latest cutoff, inclusive', () => {
    expect(labelPartitionDates(day, start + 2 * DAY + 5 * HOUR)).toEqual(['2026-01-30', '2026-01-31', '2026-02-01']);
    expect(labelPartitionDates(day, finalReadyAtMicros(day, 7 * DAY))).toEqual([
      '2026-01-30',
      '2026-01-31',
      '2026-02-01',
      '2026-02-02',
      '2026-02-03',
      '2026-02-04',
      '2026-02-05',
      '2026-02-06',
      // End of D + window is exactly midnight, so a label at 2026-02-07T00:00:00Z is within the cutoff.
      '2026-02-07',
    ]);
  });

  it('includes the next day when the cutoff is exactly its midnight, and only D just before it', () => {
    expect(labelPartitionDates(day, day.endMicros)).toEqual(['2026-01-30', '2026-01-31']);
    expect(labelPartitionDates(day, day.endMicros - 1)).toEqual(['2026-01-30']);
    expect(labelPartitionDates(day, start)).toEqual(['2026-01-30']);
  });

  it('is empty when the latest cutoff is before D starts', () => {
    expect(labelPartitionDates(day, start - 1)).toEqual([]);
  });

  it('crosses month, year and leap days', () => {
    expect(labelPartitionDates(dayWindow('2024-02-28'), dayWindow('2024-03-01').startMicros)).toEqual(['2024-02-28', '2024-02-29', '2024-03-01']);
    expect(labelPartitionDates(dayWindow('2025-12-31'), dayWindow('2026-01-01').startMicros + HOUR)).toEqual(['2025-12-31', '2026-01-01']);
  });
});

describe('parseTimestamp', () => {
  it.each([
    ['2026-01-01T00:00:00Z', JAN_1],
    ['2026-01-01T00:00:00.123456Z', JAN_1 + 123_456],
    ['2026-01-01T00:00:00.5Z', JAN_1 + 500_000],
    ['2026-01-01T00:00:00.123456789Z', JAN_1 + 123_456],
    ['2026-01-01T02:00:00+02:00', JAN_1],
    ['2026-01-01T02:00:00.000001+02:00', JAN_1 + 1],
    ['2025-12-31T19:00:00-05:00', JAN_1],
    ['2026-01-01T05:30:00+0530', JAN_1],
    ['2026-01-01T10:00Z', JAN_1 + 10 * HOUR],
    ['20260101T100000Z', JAN_1 + 10 * HOUR],
    ['2026-01-01t00:00:00z', JAN_1],
    ['1969-12-31T23:59:59.999999Z', -1],
  ])('reads %s', (text, micros) => {
    expect(parseTimestamp(text, '--as-of')).toBe(micros);
  });

  it.each([
    ['2026-01-01T00:00:00', /no time zone/],
    ['2026-01-01T00:00:00.123', /no time zone/],
    ['2026-01-01', /date and time with a zone/],
    ['2026-01-01 00:00:00Z', /date and time with a zone/],
    ['2026-02-30T00:00:00Z', /not a valid date and time/],
    ['2026-01-01T25:00:00Z', /not a valid date and time/],
    ['garbage', /date and time with a zone/],
    ['', /date and time with a zone/],
    ['9999-01-01T00:00:00Z', /outside the range/],
  ])('rejects %s', (text, message) => {
    const error = thrown(() => parseTimestamp(text, '--as-of'));
    expect(error.code).toBe('E_USAGE');
    expect(error.context?.option).toBe('--as-of');
    expect(error.message).toMatch(message);
  });
});

describe('formatMicros', () => {
  it('prints UTC with microseconds only when non-zero', () => {
    expect(formatMicros(JAN_1)).toBe('2026-01-01T00:00:00Z');
    expect(formatMicros(JAN_1 + 1)).toBe('2026-01-01T00:00:00.000001Z');
    expect(formatMicros(JAN_1 + 123_456)).toBe('2026-01-01T00:00:00.123456Z');
    expect(formatMicros(-1)).toBe('1969-12-31T23:59:59.999999Z');
    expect(formatMicros(0)).toBe('1970-01-01T00:00:00Z');
  });

  it('round-trips through parseTimestamp', () => {
    for (const micros of [JAN_1, JAN_1 + 999_999, -1, 0, 1_700_000_000_123_457, Number.MAX_SAFE_INTEGER - 7]) {
      expect(parseTimestamp(formatMicros(micros), '--as-of')).toBe(micros);
    }
  });

  it('refuses values that are not whole microseconds', () => {
    expect(thrown(() => formatMicros(1.5)).code).toBe('E_INTERNAL');
    expect(thrown(() => formatMicros(Number.NaN)).code).toBe('E_INTERNAL');
  });
});
