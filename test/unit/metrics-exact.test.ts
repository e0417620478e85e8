/**
 * SPEC §5.1 "exact under roll-up": ExactSum against BigInt rationals, the order- and merge-independence
 * of accumulators (bit for bit), and rollupMetrics over random splits of random rows against a direct
 * exact computation over the rows, to 1e-12 relative — y = 1e6 ± 1 and magnitudes 1e-3 … 1e9 included.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { metricsType } from '../../src/avro/schemas.js';
import { MetricAccumulator } from '../../src/metrics/accumulator.js';
import { ExactSum, ExactSumBank } from '../../src/metrics/compensated.js';
import { DelayHistogram, delayKey } from '../../src/metrics/delay-histogram.js';
import { Z_95, rollupMetrics, type MetricValues } from '../../src/metrics/formulas.js';
import { type Rational, ZERO, add, div, exactOf, int, mul, relativeDifference, sub, toNumber } from '../helpers/exact.js';

/** A double from a sign, a magnitude exponent (base 10) and 53 random bits. */
const mixedDouble = (minExp: number, maxExp: number) =>
  fc.tuple(fc.boolean(), fc.double({ min: minExp, max: maxExp, noNaN: true }), fc.integer({ min: 0, max: 2 ** 30 })).map(([negative, exp, noise]) => {
    const magnitude = 10 ** exp * (1 + noise / 2 ** 31);
    return negative ? -magnitude : magnitude;
  });

function exactSumOf(values: readonly number[]): Rational {
  return values.reduce((sum, v) => add(sum, exactOf(v)), ZERO);
}

describe('ExactSum (SPEC §5.1)', () => {
  it('holds the exact sum: hi is its correct rounding, hi + lo its rounding to ~106 bits', () => {
    fc.assert(
      fc.property(fc.array(mixedDouble(-12, 12), { minLength: 1, maxLength: 200 }), (values) => {
        const sum = new ExactSum();
        for (const v of values) sum.add(v);
        const exact = exactSumOf(values);
        const { hi, lo } = sum.pair();
        expect(hi).toBe(toNumber(exact));
        expect(lo).toBe(toNumber(sub(exact, exactOf(hi))));
      }),
      { numRuns: 200 },
    );
  });

  it('gives the same pair in every order and every merge tree, cancellation included', () => {
    fc.assert(
      fc.property(fc.array(mixedDouble(-3, 9), { minLength: 2, maxLength: 120 }), fc.integer({ min: 1, max: 2 ** 31 }), (base, seed) => {
        // Add every value's negation too, except a few: the huge terms cancel and the small ones must survive.
        const values = [...base, ...base.slice(1).map((v) => -v)];
        const shuffled = shuffle(values, seed);
        const one = new ExactSum();
        for (const v of values) one.add(v);
        const parts = [new ExactSum(), new ExactSum(), new ExactSum()];
        shuffled.forEach((v, i) => parts[i % 3]!.add(v));
        parts[1]!.addSum(parts[2]!);
        parts[0]!.addSum(parts[1]!);
        expect(parts[0]!.pair()).toEqual(one.pair());
        expect(one.value).toBe(base[0]);
      }),
      { numRuns: 200 },
    );
  });

  it('ExactSumBank agrees with ExactSum bit for bit as its windows move (tiny first, huge later, and back)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(mixedDouble(-300, 300), mixedDouble(-20, 20), mixedDouble(-320, -305)), { minLength: 1, maxLength: 300 }), (values) => {
        const bank = new ExactSumBank(2);
        const one = new ExactSum();
        values.forEach((v) => {
          bank.add(0, v);
          bank.add(1, -v / 3);
          one.add(v);
        });
        const merged = new ExactSumBank(2);
        merged.add(0, 1e-200);
        merged.add(0, -1e-200);
        merged.merge(bank);
        expect(bank.pair(0)).toEqual(one.pair());
        expect(merged.pair(0)).toEqual(one.pair());
        expect(merged.pair(1)).toEqual(bank.pair(1));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps overflow apart as ±Infinity rather than NaN', () => {
    const sum = new ExactSum();
    sum.add(1.5e308);
    sum.add(1.5e308);
    expect(sum.pair()).toEqual({ hi: Infinity, lo: 0 });
    const inf = new ExactSum();
    inf.add(Infinity);
    inf.add(1);
    expect(inf.value).toBe(Infinity);
  });
});

/** A seeded Fisher–Yates shuffle (a copy). */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const j = (state >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface Row {
  yTrue: number;
  yPred: number;
  delay: number;
}

/** The metrics of SPEC §5 computed exactly over the rows' per-record terms (e = fl(y − ŷ), ape = fl(|e|/|y|)). */
function directExact(rows: readonly Row[]): Record<string, number | null> {
  const n = rows.length;
  let sumE = ZERO;
  let sumE2 = ZERO;
  let sumAbs = ZERO;
  let sumE4 = ZERO;
  let sumApe = ZERO;
  let sumY = ZERO;
  let sumY2 = ZERO;
  let mapeCount = 0;
  for (const r of rows) {
    const e = exactOf(r.yTrue - r.yPred);
    const e2 = mul(e, e);
    sumE = add(sumE, e);
    sumE2 = add(sumE2, e2);
    sumAbs = add(sumAbs, exactOf(Math.abs(r.yTrue - r.yPred)));
    sumE4 = add(sumE4, mul(e2, e2));
    const y = exactOf(r.yTrue);
    sumY = add(sumY, y);
    sumY2 = add(sumY2, mul(y, y));
    if (r.yTrue !== 0) {
      mapeCount++;
      sumApe = add(sumApe, exactOf(Math.abs(r.yTrue - r.yPred) / Math.abs(r.yTrue)));
    }
  }
  const N = int(n);
  const mse = div(sumE2, N);
  const mae = div(sumAbs, N);
  const ssTot = sub(sumY2, div(mul(sumY, sumY), N));
  const variance = (sq: Rational, s: Rational): number => toNumber(div(sub(sq, div(mul(s, s), N)), int(n - 1)));
  const hwMse = Z_95 * Math.sqrt(variance(sumE4, sumE2) / n);
  const hwMae = Z_95 * Math.sqrt(variance(sumE2, sumAbs) / n);
  return {
    mse: toNumber(mse),
    mae: toNumber(mae),
    mean_error: toNumber(div(sumE, N)),
    r2: ssTot.num === 0n ? null : toNumber(sub(int(1), div(sumE2, ssTot))),
    mape: mapeCount === 0 ? null : toNumber(div(sumApe, int(mapeCount))),
    mse_ci_high: toNumber(mse) + hwMse,
    mae_ci_high: toNumber(mae) + hwMae,
    mse_ci_low: Math.max(0, toNumber(mse) - hwMse),
    mae_ci_low: Math.max(0, toNumber(mae) - hwMae),
    hw_mse: hwMse,
    hw_mae: hwMae,
  };
}

/** Rows near 1e6 ± 1 (SS_tot is 1e-12 of Σy²), or of mixed magnitudes 1e-3 … 1e9. */
const rowsArbitrary = fc.oneof(
  fc.array(
    fc.tuple(fc.integer({ min: -1024, max: 1024 }), fc.integer({ min: -600, max: 900 }), fc.double({ min: 0, max: 1e6, noNaN: true })).map(([k, j, delay]) => ({ yTrue: 1e6 + k / 1024, yPred: 1e6 + k / 1024 + j / 1024, delay })),
    { minLength: 3, maxLength: 150 },
  ),
  fc.array(
    fc.tuple(mixedDouble(-3, 9), mixedDouble(-3, 9), fc.double({ min: 0, max: 1e6, noNaN: true })).map(([yTrue, yPred, delay]) => ({ yTrue, yPred, delay })),
    { minLength: 3, maxLength: 150 },
  ),
);

/** Accumulates rows split into `parts` groups (days × slices) by `assign`, in the given order. */
function recordsOf(rows: readonly Row[], assign: readonly number[], parts: number): MetricValues[] {
  const accs = Array.from({ length: parts }, () => new MetricAccumulator());
  rows.forEach((r, i) => accs[assign[i]! % parts]!.addLabeled(r.yTrue, r.yPred, r.delay));
  return accs.map((a) => a.finish());
}

describe('rollupMetrics from the pairs (SPEC §5.1)', () => {
  it('equals a direct exact computation over the rows to 1e-12, whatever the split into days and slices', () => {
    fc.assert(
      fc.property(rowsArbitrary, fc.array(fc.nat(), { minLength: 150, maxLength: 150 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 2 ** 31 }), (rows, assign, parts, seed) => {
        const order = shuffle(
          rows.map((_, i) => i),
          seed,
        );
        const records = recordsOf(
          order.map((i) => rows[i]!),
          order.map((i) => assign[i]!),
          parts,
        );
        const rolled = rollupMetrics(records);
        const exact = directExact(rows);
        expect(rolled.labeled_count).toBe(rows.length);
        for (const field of ['mse', 'mae', 'mean_error', 'r2', 'mape'] as const) {
          const want = exact[field];
          if (want === null) continue;
          const scale = field === 'mean_error' || field === 'r2' ? Math.max(Math.abs(want), 1e-300) : Math.abs(want);
          expect(Math.abs((rolled[field] ?? NaN) - want), `${field}: ${rolled[field]} vs ${want}`).toBeLessThanOrEqual(1e-12 * scale);
        }
        for (const [field, hw] of [
          ['mse_ci_low', 'hw_mse'],
          ['mse_ci_high', 'hw_mse'],
          ['mae_ci_low', 'hw_mae'],
          ['mae_ci_high', 'hw_mae'],
        ] as const) {
          const want = exact[field]!;
          const center = field.startsWith('mse') ? exact.mse! : exact.mae!;
          expect(Math.abs((rolled[field] ?? NaN) - want), field).toBeLessThanOrEqual(1e-12 * (Math.abs(center) + exact[hw]!));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('repeats a record bit for bit when it rolls up alone, and treats v1 records (no _lo) as once rounded', () => {
    const acc = new MetricAccumulator();
    for (let k = 0; k < 1000; k++) acc.addLabeled(1e6 + (k % 7) / 1024, 1e6 + (k % 5) / 1024, k);
    const day = acc.finish();
    const rolled = rollupMetrics([day]);
    for (const field of ['mse', 'rmse', 'mae', 'mean_error', 'r2', 'mape', 'mse_ci_low', 'mse_ci_high', 'mae_ci_low', 'mae_ci_high', 'sum_sq_y_true', 'sum_sq_y_true_lo'] as const) {
      expect(Object.is(rolled[field], day[field]), field).toBe(true);
    }
    const v1 = { count: day.count, labeled_count: day.labeled_count, mape_count: day.mape_count, sum_error: day.sum_error, sum_sq_error: day.sum_sq_error, sum_abs_error: day.sum_abs_error, sum_quad_error: day.sum_quad_error, sum_ape: day.sum_ape, sum_y_true: day.sum_y_true, sum_sq_y_true: day.sum_sq_y_true };
    expect(rollupMetrics([v1]).sum_sq_y_true_lo).toBe(0);
  });
});

describe('accumulators are order- and merge-independent, bit for bit (SPEC §5.1)', () => {
  it('gives byte-identical ModelMetrics for every order and split of the same rows', () => {
    const base = { window_start_ts: 0, window_end_ts: 1, stage: 'FINAL', model_name: 'm', model_version: 'v', slice_keys: {}, labels_through_ts: 2, label_age_s: null };
    fc.assert(
      fc.property(rowsArbitrary, fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 7 }), (rows, seed, parts) => {
        const one = new MetricAccumulator();
        for (const r of rows) one.addLabeled(r.yTrue, r.yPred, r.delay);
        const shuffled = shuffle(rows, seed);
        const split = Array.from({ length: parts }, () => new MetricAccumulator());
        shuffled.forEach((r, i) => split[(i * 7 + seed) % parts]!.addLabeled(r.yTrue, r.yPred, r.delay));
        const merged = new MetricAccumulator();
        for (const p of shuffle(split, seed + 1)) merged.merge(p);
        const a = metricsType.toBuffer({ ...base, ...one.finish() });
        const b = metricsType.toBuffer({ ...base, ...merged.finish() });
        expect(b.equals(a)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('forgets a removed label state without a trace (the label-age buckets rely on it)', () => {
    const kept = new MetricAccumulator();
    const churned = new MetricAccumulator();
    for (let i = 0; i < 500; i++) {
      const y = 1e6 + i / 64;
      kept.addLabelState(1, 0, 0, true, y, y - 3.25, i, false, delayKey(i));
      churned.addLabelState(1, 0, 0, true, y * 1e-9, y, 1e5, false, delayKey(1e5));
      churned.addLabelState(1, 0, 0, true, y, y - 3.25, i, false, delayKey(i));
      churned.addLabelState(-1, 0, 0, true, y * 1e-9, y, 1e5, false, delayKey(1e5));
    }
    const a = kept.finish();
    const b = churned.finish();
    // The maximum is not removed (maturity.ts only removes delays at most their replacement's).
    expect({ ...b, label_delay_max_s: null }).toEqual({ ...a, label_delay_max_s: null });
  });
});

describe('DelayHistogram', () => {
  it('reports quantiles within 0.5% and depends only on the multiset of delays', () => {
    const delays = Array.from({ length: 5000 }, (_, i) => 10 ** (-3 + (i * 9) / 5000));
    const a = new DelayHistogram();
    for (const d of delays) a.addKey(delayKey(d), 1);
    const b = new DelayHistogram();
    const c = new DelayHistogram();
    shuffle(delays, 5).forEach((d, i) => (i % 2 ? b : c).addKey(delayKey(d), 1));
    c.addKey(delayKey(123), 1);
    c.addKey(delayKey(123), -1);
    b.merge(c);
    for (const q of [0, 0.5, 0.95, 1]) {
      expect(b.quantile(q)).toBe(a.quantile(q));
      const want = delays[Math.floor(q * (delays.length - 1))]!;
      expect(relativeDifference(a.quantile(q)!, want)).toBeLessThanOrEqual(0.005 + 1e-12);
    }
    expect(new DelayHistogram().quantile(0.5)).toBeNull();
  });
});
