/**
 * SPEC §5.1 windows and label ages at the join level: label-age records against separately run
 * preliminary joins at --as-of = end of D + A (bit for bit, in combos and in the overflow rows),
 * hourly records against a direct computation per hour, a day with predictions in only some hours,
 * and the option parsers.
 */
import { describe, expect, it } from 'vitest';
import { metricsType } from '../../src/avro/schemas.js';
import { UsageError } from '../../src/errors.js';
import { DayJoin } from '../../src/join/day-join.js';
import { DayMetrics } from '../../src/join/day-metrics.js';
import { LabelIndex } from '../../src/join/label-index.js';
import { finalReadyAtMicros } from '../../src/join/policy.js';
import type { LabelRecord, PredictionRecord, Stage } from '../../src/join/records.js';
import { type ModelMetricsRecord, computeSlices } from '../../src/join/slices.js';
import { parseLabelAges, parseWindows } from '../../src/join/windows.js';
import { DAY, dirtyDay } from '../helpers/dirty-day.js';

const S = 1_000_000;
const H = 3600 * S;
const WINDOW = 7 * 24 * H;
const AGES = [3600, 6 * 3600, 86_400, 2 * 86_400, 3 * 86_400];

interface RunOptions {
  stage: Stage;
  asOf?: number;
  ages?: readonly number[];
  hourly?: boolean;
  maxCombos?: number;
  maxSliceValues?: number;
}

/** One run of the join as daily.ts does it: labels past labels-through are not indexed. */
function run(predictions: readonly PredictionRecord[], labels: readonly LabelRecord[], options: RunOptions): ModelMetricsRecord[] {
  const labelsThrough = options.stage === 'final' ? finalReadyAtMicros(DAY, WINDOW) : options.asOf!;
  const index = new LabelIndex();
  for (const l of labels) if (l.label_ts <= labelsThrough) index.add(l.prediction_id, l.y_true, l.label_ts);
  const join = new DayJoin(
    { stage: options.stage, day: DAY, asOfMicros: options.asOf ?? labelsThrough, windowMicros: WINDOW, sliceKeys: undefined, labelAgesSeconds: options.ages ?? [], hourly: options.hourly ?? false },
    index,
    1024,
    options.maxCombos,
  );
  for (const p of predictions) join.accept(p);
  return computeSlices(DayMetrics.of(join), { stage: options.stage, day: DAY, labelsThroughMicros: labelsThrough, maxSliceValues: options.maxSliceValues ?? 4 });
}

/** The bytes of a record, with the fields that name the run rather than the numbers set aside. */
function bytesOf(r: ModelMetricsRecord): string {
  return metricsType.toBuffer({ ...r, stage: 'PRELIMINARY', label_age_s: null }).toString('hex');
}

function sliceId(r: ModelMetricsRecord): string {
  return `${r.model_name}@${r.model_version} ${JSON.stringify(r.slice_keys)} ${r.window_start_ts}-${r.window_end_ts} ${r.label_age_s}`;
}

describe('label-age records (SPEC §5.1)', () => {
  const { predictions, labels } = dirtyDay(11, 4000);

  it('are bit-identical to preliminary runs at --as-of = end of D + A, in combos and in overflow rows', () => {
    const finals = [undefined, 9, 0].map((maxCombos) => run(predictions, labels, { stage: 'final', ages: AGES, hourly: true, maxCombos }));
    // The overflow rows replay the same rule: every variant writes the same records.
    expect(finals[1]!.map(bytesOf)).toEqual(finals[0]!.map(bytesOf));
    expect(finals[2]!.map(bytesOf)).toEqual(finals[0]!.map(bytesOf));
    const final = finals[0]!;
    for (const age of AGES) {
      const asOf = DAY.endMicros + age * S;
      const ageRecords = final.filter((r) => r.label_age_s === age);
      for (const maxCombos of [undefined, 0]) {
        // The reference: a preliminary run without label ages, one bucket, no entry ever removed.
        const ordinary = run(predictions, labels, { stage: 'preliminary', asOf, maxCombos });
        const preliminary = run(predictions, labels, { stage: 'preliminary', asOf, ages: AGES, maxCombos });
        expect(preliminary.filter((r) => r.label_age_s === null).map(bytesOf)).toEqual(ordinary.map(bytesOf));
        expect(ageRecords.map(sliceId).map((id) => id.replace(/ \d+$/, ' null'))).toEqual(ordinary.map(sliceId));
        expect(ageRecords.every((r) => r.labels_through_ts === asOf && r.stage === 'FINAL')).toBe(true);
        expect(ageRecords.map(bytesOf), `age ${age} s`).toEqual(ordinary.map(bytesOf));
        // The preliminary's own age records (ages up to its as-of) are the final's too.
        for (const earlier of AGES.filter((a) => a <= age)) {
          expect(preliminary.filter((r) => r.label_age_s === earlier).map(bytesOf)).toEqual(final.filter((r) => r.label_age_s === earlier).map(bytesOf));
        }
      }
      // The curve is not flat: coverage grows with age on this data.
      expect(ageRecords[0]!.labeled_count).toBeGreaterThan(0);
    }
    const whole = final.filter((r) => Object.keys(r.slice_keys).length === 0 && r.model_version === 'v1' && r.window_end_ts - r.window_start_ts > H);
    const coverage = whole.map((r) => r.labeled_count);
    expect(coverage.slice(1)).toEqual([...coverage.slice(1)].sort((a, b) => a - b));
  });

  it('leave the ordinary records as they were, and are written only up to the run\'s labels-through', () => {
    const plain = run(predictions, labels, { stage: 'final' });
    const withAges = run(predictions, labels, { stage: 'final', ages: [...AGES, 7 * 86_400, 8 * 86_400] });
    expect(withAges.filter((r) => r.label_age_s === null).map(bytesOf)).toEqual(plain.map(bytesOf));
    // P8D lies past end of D + P7D: not written; P7D is (labels-through = end of D + window).
    expect(new Set(withAges.map((r) => r.label_age_s))).toEqual(new Set([null, ...AGES, 7 * 86_400]));
    const early = run(predictions, labels, { stage: 'preliminary', asOf: DAY.endMicros + 2 * H, ages: AGES });
    expect(new Set(early.map((r) => r.label_age_s))).toEqual(new Set([null, 3600]));
    const during = run(predictions, labels, { stage: 'preliminary', asOf: DAY.endMicros - H, ages: AGES });
    expect(new Set(during.map((r) => r.label_age_s))).toEqual(new Set([null]));
  });

  it('are unique by (model, version, slice, window, label age) and sorted deterministically', () => {
    const records = run(predictions, labels, { stage: 'final', ages: AGES, hourly: true });
    const ids = records.map(sliceId);
    expect(new Set(ids).size).toBe(ids.length);
    // Per slice: the day, its ages ascending, then its hours.
    const first = records.slice(0, 1 + AGES.length);
    expect(first.map((r) => r.label_age_s)).toEqual([null, ...AGES]);
    expect(records[1 + AGES.length]!.window_end_ts - records[1 + AGES.length]!.window_start_ts).toBe(H);
  });
});

describe('hourly records (SPEC §5.1)', () => {
  it('equal a direct computation over each hour\'s predictions; misplaced ones only in the day', () => {
    const { predictions, labels } = dirtyDay(5, 3000);
    const records = run(predictions, labels, { stage: 'final', hourly: true, maxSliceValues: 1000 });
    const day = records.filter((r) => r.window_end_ts - r.window_start_ts > H);
    expect(day.map(bytesOf)).toEqual(run(predictions, labels, { stage: 'final', maxSliceValues: 1000 }).map(bytesOf));
    expect(day[0]!.misplaced_count).toBeGreaterThan(0);
    // The hour of a prediction is its first occurrence's (duplicates count there, SPEC §3).
    const firstHour = new Map<string, number>();
    for (const p of predictions) if (!firstHour.has(p.prediction_id)) firstHour.set(p.prediction_id, Math.floor((p.inference_ts - DAY.startMicros) / H));
    let compared = 0;
    for (let hour = 0; hour < 24; hour++) {
      const start = DAY.startMicros + hour * H;
      const mine = records.filter((r) => r.window_start_ts === start && r.window_end_ts === start + H);
      const direct = run(
        predictions.filter((p) => firstHour.get(p.prediction_id) === hour),
        labels,
        { stage: 'final', maxSliceValues: 1000 },
      );
      expect(mine.map(sliceId).map((id) => id.replace(/ \d+-\d+ /, ' '))).toEqual(direct.map(sliceId).map((id) => id.replace(/ \d+-\d+ /, ' ')));
      const strip = (r: ModelMetricsRecord): string => bytesOf({ ...r, window_start_ts: 0, window_end_ts: 0 });
      expect(mine.map(strip), `hour ${hour}`).toEqual(direct.map(strip));
      expect(mine.every((r) => r.misplaced_count === 0)).toBe(true);
      compared += mine.length;
    }
    expect(compared).toBeGreaterThan(24);
  });

  it('exist only for the hours with kept predictions, and fold like the day', () => {
    const { predictions, labels } = dirtyDay(8, 600, [3, 14, 15]);
    const records = run(predictions, labels, { stage: 'preliminary', asOf: DAY.endMicros + 2 * 86_400 * S, hourly: true, maxSliceValues: 2 });
    const hours = new Set(records.filter((r) => r.window_end_ts - r.window_start_ts === H).map((r) => (r.window_start_ts - DAY.startMicros) / H));
    expect([...hours].sort((a, b) => a - b)).toEqual([3, 14, 15]);
    const daySlices = new Set(records.filter((r) => r.window_end_ts - r.window_start_ts > H).map((r) => `${r.model_version} ${JSON.stringify(r.slice_keys)}`));
    for (const r of records) expect(daySlices.has(`${r.model_version} ${JSON.stringify(r.slice_keys)}`)).toBe(true);
    expect(records.some((r) => r.slice_keys.user === '__other__' && r.window_end_ts - r.window_start_ts === H)).toBe(true);
  });
});

describe('--windows and --label-ages', () => {
  it('parse the defaults and the documented forms', () => {
    expect(parseWindows('P1D')).toEqual({ hourly: false });
    expect(parseWindows(['P1D', 'PT1H'])).toEqual({ hourly: true });
    expect(parseWindows('PT1H,PT24H')).toEqual({ hourly: true });
    expect(parseLabelAges('PT1H,PT6H,P1D,P2D,P3D,P7D')).toEqual([3600, 21_600, 86_400, 172_800, 259_200, 604_800]);
    expect(parseLabelAges('P2D,PT30M')).toEqual([1800, 172_800]);
    expect(parseLabelAges('none')).toEqual([]);
    expect(parseLabelAges(['NONE'])).toEqual([]);
  });

  it.each([
    ['--windows', () => parseWindows('P1D,PT15M'), /PT15M is not a supported window/],
    ['--windows', () => parseWindows('PT1H'), /has no P1D/],
    ['--windows', () => parseWindows('P1D,P1D'), /lists P1D twice/],
    ['--windows', () => parseWindows('P1M'), /months or years/],
    ['--windows', () => parseWindows('daily'), /not an ISO-8601 duration/],
    ['--label-ages', () => parseLabelAges('PT1H,PT60M'), /lists one age twice: PT1H and PT60M/],
    ['--label-ages', () => parseLabelAges('PT0S'), /is zero/],
    ['--label-ages', () => parseLabelAges('-PT1H'), /negative|not an ISO-8601/],
    ['--label-ages', () => parseLabelAges('PT0.5S'), /whole number of seconds/],
    ['--label-ages', () => parseLabelAges('none,PT1H'), /none disables/],
    ['--label-ages', () => parseLabelAges('P1Y'), /months or years/],
    ['--label-ages', () => parseLabelAges(Array.from({ length: 31 }, (_, i) => `PT${i + 1}H`)), /at most 30/],
  ])('%s refuses a bad value (%#) with a UsageError naming the option', (option, parse, message) => {
    let caught: unknown;
    try {
      parse();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).message).toMatch(message);
    expect((caught as UsageError).message.startsWith(option)).toBe(true);
    expect((caught as UsageError).context).toMatchObject({ option });
  });
});
