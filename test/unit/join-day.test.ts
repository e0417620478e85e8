import { describe, expect, it } from 'vitest';
import { DayJoin } from '../../src/join/day-join.js';
import { DayMetrics } from '../../src/join/day-metrics.js';
import { LabelIndex } from '../../src/join/label-index.js';
import { dayWindow } from '../../src/join/policy.js';
import type { PredictionRecord, Stage } from '../../src/join/records.js';
import { OTHER_VALUE, computeSlices } from '../../src/join/slices.js';

const DAY = dayWindow('2026-03-02');
const S = 1_000_000; // micros per second
const H = 3600 * S;
const WINDOW = 7 * 24 * H;

function prediction(id: string, overrides: Partial<PredictionRecord> = {}): PredictionRecord {
  return {
    prediction_id: id,
    model_name: 'eta',
    model_version: 'v1',
    feature_set_version: 'fs1',
    y_pred: 10,
    y_true: null,
    residual: null,
    inference_ts: DAY.startMicros + 12 * H,
    segment_keys: {},
    ...overrides,
  };
}

function setup(labels: Array<[string, number, number]>, options: { stage?: Stage; asOf?: number; sliceKeys?: string[]; maxCombos?: number } = {}) {
  const index = new LabelIndex();
  for (const [id, y, ts] of labels) index.add(id, y, ts);
  const stage = options.stage ?? 'preliminary';
  const join = new DayJoin({ stage, day: DAY, asOfMicros: options.asOf ?? DAY.endMicros + 24 * H, windowMicros: WINDOW, sliceKeys: options.sliceKeys }, index, 1024, options.maxCombos);
  const slices = (maxSliceValues = 100) => computeSlices(DayMetrics.of(join), { stage, day: DAY, labelsThroughMicros: DAY.endMicros + WINDOW, maxSliceValues });
  return { join, slices };
}

const noon = DAY.startMicros + 12 * H;

describe('DayJoin: label rules (SPEC §3)', () => {
  it('joins the latest usable label and counts the losers as duplicate labels', () => {
    const { join, slices } = setup([
      ['a', 11, noon + 1 * H],
      ['a', 13, noon + 3 * H],
      ['a', 12, noon + 2 * H],
    ]);
    const out = join.accept(prediction('a'))!;
    expect(out.y_true).toBe(13);
    expect(out.residual).toBe(3);
    expect(out.label_ts).toBe(noon + 3 * H);
    expect(out.label_delay_seconds).toBe(3 * 3600);
    expect(out.label_source).toBe('labels');
    const [whole] = slices();
    expect(whole!.duplicate_label_count).toBe(2);
    expect(whole!.labeled_count).toBe(1);
    expect(whole!.mse).toBe(9);
  });

  it('an invalid prediction joins no label, but its losing and non-finite labels are counted as for a valid one', () => {
    const { join, slices } = setup([
      ['a', 11, noon + 1 * H],
      ['a', 13, noon + 3 * H],
      ['a', Number.NaN, noon + 2 * H],
      ['a', 12, noon + 2 * H],
    ]);
    const out = join.accept(prediction('a', { y_pred: Number.NaN }))!;
    expect(out.y_true).toBeNull();
    expect(out.label_source).toBeNull();
    const [whole] = slices();
    // invalid_count: the prediction and its non-finite label; duplicate_label_count: 3 usable, 1 would win.
    expect(whole!.invalid_count).toBe(2);
    expect(whole!.duplicate_label_count).toBe(2);
    expect(whole!.labeled_count).toBe(0);
    expect(whole!.count).toBe(0);
  });

  it('breaks a label_ts tie by the later label in (object key, record) order', () => {
    const { join } = setup([
      ['a', 11, noon + H],
      ['a', 12, noon + H],
    ]);
    expect(join.accept(prediction('a'))!.y_true).toBe(12);
  });

  it('preliminary: a label after --as-of changes nothing; a label exactly at --as-of is usable', () => {
    const asOf = noon + 5 * H;
    const { join } = setup([
      ['a', 11, asOf + 1],
      ['b', 12, asOf],
    ], { asOf });
    const a = join.accept(prediction('a'))!;
    expect(a.y_true).toBeNull();
    expect(a.label_source).toBeNull();
    expect(join.accept(prediction('b'))!.y_true).toBe(12);
  });

  it('final: the cutoff is inference_ts + label window, per prediction', () => {
    const { join } = setup([
      ['a', 11, noon + WINDOW],
      ['b', 12, noon + WINDOW + 1],
      ['b', 13, noon + H],
    ], { stage: 'final', asOf: DAY.endMicros + WINDOW });
    expect(join.accept(prediction('a'))!.y_true).toBe(11);
    expect(join.accept(prediction('b'))!.y_true).toBe(13);
  });

  it('final: a prediction stamped after D (misplaced) has its cutoff capped at end of D + window', () => {
    const close = DAY.endMicros + WINDOW;
    const late = DAY.endMicros + 2 * H; // misplaced into D's partition
    const { join } = setup([
      ['a', 11, close],
      ['a', 12, close + 1],
    ], { stage: 'final', asOf: close + 10 * H });
    const a = join.accept(prediction('a', { inference_ts: late }))!;
    expect(a.y_true).toBe(11);
  });

  it('a dataset label wins over inline y_true; inline truth is a label with delay 0 otherwise', () => {
    const { join, slices } = setup([['a', 20, noon + H]]);
    const a = join.accept(prediction('a', { y_true: 15, residual: 5 }))!;
    expect(a.y_true).toBe(20);
    expect(a.label_source).toBe('labels');
    const b = join.accept(prediction('b', { y_true: 15, residual: 5 }))!;
    expect(b.y_true).toBe(15);
    expect(b.residual).toBe(5);
    expect(b.label_source).toBe('inline');
    expect(b.label_ts).toBe(noon);
    expect(b.label_delay_seconds).toBe(0);
    expect(slices()[0]!.duplicate_label_count).toBe(0);
  });

  it('a label before its prediction is used with delay 0 and counted as a negative delay', () => {
    const { join, slices } = setup([['a', 12, noon - H]]);
    const a = join.accept(prediction('a'))!;
    expect(a.y_true).toBe(12);
    expect(a.label_delay_seconds).toBe(0);
    expect(a.label_ts).toBe(noon - H);
    const [whole] = slices();
    expect(whole!.negative_delay_count).toBe(1);
    expect(whole!.label_delay_max_s).toBe(0);
  });

  it('an invalid y_pred is kept as written, counted invalid and kept out of the metrics', () => {
    const { join, slices } = setup([['a', 12, noon + H]]);
    const a = join.accept(prediction('a', { y_pred: Number.NaN, y_true: 3, residual: 1 }))!;
    expect(a.y_pred).toBeNaN();
    expect(a.y_true).toBe(3);
    expect(a.residual).toBe(1);
    expect(a.label_source).toBeNull();
    expect(a.label_ts).toBeNull();
    join.accept(prediction('b', { y_pred: Number.POSITIVE_INFINITY }));
    const [whole] = slices();
    expect(whole!.count).toBe(0);
    expect(whole!.invalid_count).toBe(2);
    expect(whole!.missing_label_rate).toBeNull();
    expect(whole!.mse).toBeNull();
  });

  it('an invalid prediction still counts its non-finite labels (dataset and inline) at or before the cutoff', () => {
    const asOf = noon + 5 * H;
    const { join, slices } = setup([
      ['a', Number.NaN, noon + H],
      ['a', 12, noon + 2 * H],
      ['a', Number.NaN, asOf + 1],
    ], { asOf });
    join.accept(prediction('a', { y_pred: Number.NaN, y_true: Number.POSITIVE_INFINITY }));
    const [whole] = slices();
    // the prediction itself, its NaN dataset label before the cutoff, and its infinite inline truth
    expect(whole!.invalid_count).toBe(3);
    expect(whole!.count).toBe(0);
  });

  it('a non-finite label at or before the cutoff is ignored and counted invalid; after the cutoff it is not counted', () => {
    const asOf = noon + 5 * H;
    const { join, slices } = setup([
      ['a', Number.NaN, noon + H],
      ['a', 14, noon + 2 * H],
      ['a', Number.POSITIVE_INFINITY, asOf + 1],
    ], { asOf });
    expect(join.accept(prediction('a'))!.y_true).toBe(14);
    const [whole] = slices();
    expect(whole!.invalid_count).toBe(1);
    expect(whole!.labeled_count).toBe(1);
  });

  it('keeps the first of duplicate predictions whatever its values and counts the rest in its slices', () => {
    const { join, slices } = setup([]);
    expect(join.accept(prediction('a', { y_pred: 1, segment_keys: { region: 'eu' } }))).toBeDefined();
    expect(join.accept(prediction('a', { y_pred: 2, segment_keys: { region: 'us' } }))).toBeUndefined();
    expect(join.accept(prediction('a', { y_pred: 3, model_version: 'v2' }))).toBeUndefined();
    const records = slices();
    expect(records.map((r) => [r.model_version, r.slice_keys, r.duplicate_prediction_count])).toEqual([
      ['v1', {}, 2],
      ['v1', { region: 'eu' }, 2],
    ]);
    expect(join.stats.duplicatesDropped).toBe(2);
  });

  it('counts records whose inference_ts lies outside the day as misplaced, and keeps them in the day', () => {
    const { join, slices } = setup([]);
    join.accept(prediction('a', { inference_ts: DAY.startMicros - 1 }));
    join.accept(prediction('b', { inference_ts: DAY.endMicros }));
    join.accept(prediction('c', { inference_ts: DAY.endMicros - 1 }));
    expect(slices()[0]!.misplaced_count).toBe(2);
    expect(slices()[0]!.count).toBe(3);
  });
});

describe('computeSlices (SPEC §5)', () => {
  it('computes metrics per model version and per segment value, sorted', () => {
    const { join, slices } = setup([
      ['a', 12, noon + 60 * S],
      ['b', 8, noon + 120 * S],
      ['c', 10, noon + 180 * S],
    ]);
    join.accept(prediction('a', { segment_keys: { region: 'us', device: 'ios' } })); // e = 2
    join.accept(prediction('b', { segment_keys: { region: 'eu' } })); // e = -2
    join.accept(prediction('c', { segment_keys: { region: 'eu' }, model_version: 'v0' })); // e = 0
    join.accept(prediction('d', { segment_keys: { region: 'eu' } })); // unlabeled
    const records = slices();
    expect(records.map((r) => [r.model_version, r.slice_keys, r.count, r.labeled_count])).toEqual([
      ['v0', {}, 1, 1],
      ['v0', { region: 'eu' }, 1, 1],
      ['v1', {}, 3, 2],
      ['v1', { device: 'ios' }, 1, 1],
      ['v1', { region: 'eu' }, 2, 1],
      ['v1', { region: 'us' }, 1, 1],
    ]);
    const v1 = records[2]!;
    // errors 2 and -2: mse 4, mae 2, mean error 0, y = 12, 8: SS_tot = 8, r2 = 1 - 8/8 = 0
    expect(v1.mse).toBe(4);
    expect(v1.rmse).toBe(2);
    expect(v1.mae).toBe(2);
    expect(v1.mean_error).toBe(0);
    expect(v1.r2).toBe(0);
    expect(v1.missing_label_rate).toBeCloseTo(1 / 3, 15);
    expect(v1.mape).toBeCloseTo((2 / 12 + 2 / 8) / 2, 15);
    expect(v1.label_delay_max_s).toBe(120);
    expect(v1.stage).toBe('PRELIMINARY');
    expect(v1.window_start_ts).toBe(DAY.startMicros);
    expect(v1.window_end_ts).toBe(DAY.endMicros);
  });

  it('keeps the top N values per key and folds the rest into __other__, ties by byte order', () => {
    const { join, slices } = setup([]);
    let n = 0;
    const add = (region: string, times: number) => {
      for (let i = 0; i < times; i++) join.accept(prediction(`p${n++}`, { segment_keys: { region } }));
    };
    add('eu', 5);
    add('us', 3);
    add('b', 2);
    add('a', 2);
    add('c', 1);
    const regions = slices(3)
      .filter((r) => 'region' in r.slice_keys)
      .map((r) => [r.slice_keys.region, r.count]);
    // eu (5) and us (3) lead; of the tie at 2, "a" sorts before "b"; b and c fold into __other__.
    expect(regions).toEqual([
      ['a', 2],
      ['eu', 5],
      ['us', 3],
      [OTHER_VALUE, 3],
    ]);
  });

  it('a real segment value "__other__" folds into the fold bucket, so slice_keys stay unique', () => {
    const { join, slices } = setup([]);
    join.accept(prediction('a', { segment_keys: { region: OTHER_VALUE } }));
    join.accept(prediction('b', { segment_keys: { region: OTHER_VALUE } }));
    join.accept(prediction('c', { segment_keys: { region: 'eu' } }));
    const regions = slices(5)
      .filter((r) => 'region' in r.slice_keys)
      .map((r) => [r.slice_keys.region, r.count]);
    expect(regions).toEqual([
      ['eu', 1],
      [OTHER_VALUE, 2],
    ]);
  });

  it('slices only on --slice-keys when given', () => {
    const { join, slices } = setup([], { sliceKeys: ['device'] });
    join.accept(prediction('a', { segment_keys: { region: 'eu', device: 'ios' } }));
    expect(slices().map((r) => r.slice_keys)).toEqual([{}, { device: 'ios' }]);
  });

  it('ranks per model version, so a value can be top in one version and folded in another', () => {
    const { join, slices } = setup([]);
    join.accept(prediction('a', { segment_keys: { region: 'eu' } }));
    join.accept(prediction('b', { segment_keys: { region: 'us' } }));
    join.accept(prediction('c', { segment_keys: { region: 'us' } }));
    join.accept(prediction('d', { segment_keys: { region: 'eu' }, model_version: 'v2' }));
    const keys = slices(1).map((r) => [r.model_version, r.slice_keys.region ?? '*', r.count]);
    expect(keys).toEqual([
      ['v1', '*', 3],
      ['v1', 'us', 2],
      ['v1', OTHER_VALUE, 1],
      ['v2', '*', 1],
      ['v2', 'eu', 1],
    ]);
  });
});

describe('computeSlices: combined accumulation equals a direct recomputation', () => {
  it('matches per-slice sums computed naively from the enriched records, with and without folding', async () => {
    const { seededRandom } = await import('../../src/demo/generate.js');
    const random = seededRandom(7);
    const labels: Array<[string, number, number]> = [];
    const predictions: PredictionRecord[] = [];
    for (let i = 0; i < 5000; i++) {
      const segment_keys: Record<string, string> = { region: `r${Math.floor(random() * 6)}` };
      if (random() < 0.7) segment_keys.device = `d${Math.floor(random() * 3)}`;
      if (random() < 0.5) segment_keys.user = `u${Math.floor(random() * 400)}`;
      predictions.push(prediction(`p${i}`, { y_pred: Math.round(random() * 1000) / 8, model_version: random() < 0.5 ? 'v1' : 'v2', segment_keys }));
      if (random() < 0.8) labels.push([`p${i}`, Math.round(random() * 1000) / 8, noon + Math.floor(random() * 3600) * S]);
    }
    // Combos only; combos then overflow rows; rows only — with and without folding into __other__.
    for (const [maxSliceValues, maxCombos] of [[100, undefined], [3, undefined], [100, 25], [3, 25], [3, 0]] as const) {
      const { join, slices } = setup(labels, { maxCombos });
      const enriched = predictions.map((p) => join.accept(p)!);
      // Re-sent predictions count in the kept one's slices, whether it sits in a combo or a row.
      for (let i = 0; i < 40; i++) expect(join.accept({ ...predictions[i * 97]!, y_pred: -1 })).toBeUndefined();
      if (maxCombos !== undefined) expect(join.rowCount).toBeGreaterThan(0);
      const records = slices(maxSliceValues);
      for (const record of records) {
        const [key, value] = Object.entries(record.slice_keys)[0] ?? [];
        const kept = new Set(records.filter((r) => r.model_version === record.model_version && key !== undefined && key in r.slice_keys).map((r) => r.slice_keys[key!]));
        const members = enriched.filter((e) => {
          if (e.model_version !== record.model_version) return false;
          if (key === undefined) return true;
          const v = e.segment_keys[key];
          if (v === undefined) return false;
          return value === OTHER_VALUE ? !kept.has(v) : v === value;
        });
        const labeled = members.filter((e) => e.y_true !== null);
        const resent = new Set(Array.from({ length: 40 }, (_, i) => predictions[i * 97]!.prediction_id));
        expect(record.duplicate_prediction_count).toBe(members.filter((e) => resent.has(e.prediction_id)).length);
        expect(record.count).toBe(members.length);
        expect(record.labeled_count).toBe(labeled.length);
        const sse = labeled.reduce((sum, e) => sum + (e.y_true! - e.y_pred) ** 2, 0);
        expect(record.sum_sq_error).toBeCloseTo(sse, 6);
        if (labeled.length === 0) expect(record.mse).toBeNull();
        else expect(record.mse).toBeCloseTo(sse / labeled.length, 9);
      }
    }
  });
});
