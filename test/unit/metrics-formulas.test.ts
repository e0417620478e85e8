import { describe, expect, it } from 'vitest';
import { MetricAccumulator } from '../../src/metrics/accumulator.js';
import { dw } from '../../src/metrics/compensated.js';
import { metricsFromSums, rollupMetrics, Z_95, type MetricValues, type SumRecord } from '../../src/metrics/formulas.js';
import { seededRandom as random } from '../../src/demo/generate.js';

/** Records of (y_true, y_pred); delays do not matter for these formulas. */
function accumulate(pairs: Array<[number, number]>, unlabeled = 0): MetricValues {
  const acc = new MetricAccumulator();
  for (const [yTrue, yPred] of pairs) acc.addLabeled(yTrue, yPred, 60);
  for (let i = 0; i < unlabeled; i++) acc.addUnlabeled();
  return acc.finish();
}


const DERIVED = [
  'missing_label_rate',
  'mse',
  'rmse',
  'mae',
  'mean_error',
  'r2',
  'mape',
  'mse_ci_low',
  'mse_ci_high',
  'rmse_ci_low',
  'rmse_ci_high',
  'mae_ci_low',
  'mae_ci_high',
] as const;

describe('metrics of small hand-computed sets', () => {
  it('no labels: counts only, every metric null, sums 0', () => {
    const m = accumulate([], 3);
    expect(m.count).toBe(3);
    expect(m.labeled_count).toBe(0);
    expect(m.missing_label_rate).toBe(1);
    for (const field of DERIVED.filter((f) => f !== 'missing_label_rate')) expect(m[field]).toBeNull();
    expect(m.label_delay_p50_s).toBeNull();
    expect(m.label_delay_p95_s).toBeNull();
    expect(m.label_delay_max_s).toBeNull();
    expect(m.mape_count).toBe(0);
    expect([m.sum_error, m.sum_sq_error, m.sum_abs_error, m.sum_quad_error, m.sum_ape, m.sum_y_true, m.sum_sq_y_true]).toEqual([
      0, 0, 0, 0, 0, 0, 0,
    ]);
  });

  it('an empty slice has a null missing_label_rate (count = 0)', () => {
    const m = new MetricAccumulator().finish();
    expect(m.count).toBe(0);
    expect(m.missing_label_rate).toBeNull();
    expect(m.mse).toBeNull();
  });

  it('one label: point metrics, no R² (SS_tot = 0) and no intervals (n < 2)', () => {
    // y_true 3, y_pred 1 → e = 2: mse 4, rmse 2, mae 2, mean_error 2, mape |2/3|.
    const m = accumulate([[3, 1]]);
    expect(m).toMatchObject({ count: 1, labeled_count: 1, missing_label_rate: 0, mse: 4, rmse: 2, mae: 2, mean_error: 2 });
    expect(m.mape).toBe(2 / 3);
    expect(m.mape_count).toBe(1);
    expect(m.r2).toBeNull();
    for (const f of ['mse_ci_low', 'mse_ci_high', 'rmse_ci_low', 'rmse_ci_high', 'mae_ci_low', 'mae_ci_high'] as const) {
      expect(m[f]).toBeNull();
    }
    // Σe = 2, Σe² = 4, Σ|e| = 2, Σe⁴ = 16, Σ|e/y| = 2/3, Σy = 3, Σy² = 9.
    expect([m.sum_error, m.sum_sq_error, m.sum_abs_error, m.sum_quad_error, m.sum_ape, m.sum_y_true, m.sum_sq_y_true]).toEqual([
      2, 4, 2, 16, 2 / 3, 3, 9,
    ]);
  });

  it('two labels and one unlabeled prediction', () => {
    // (3, 1) → e = 2; (5, 6) → e = −1.
    // Σe = 1, Σe² = 5, Σ|e| = 3, Σe⁴ = 17, Σ|e/y| = 2/3 + 1/5 = 13/15, Σy = 8, Σy² = 34.
    // mse = 5/2, mae = 3/2, mean_error = 1/2, mape = 13/30, missing = 1/3.
    // SS_tot = 34 − 8²/2 = 2, SS_res = 5 → r2 = 1 − 5/2 = −1.5.
    // var(e²) = (17 − 5²/2)/1 = 4.5 → half-width z·√(4.5/2) = 1.5z → mse CI [max(0, 2.5 − 1.5z), 2.5 + 1.5z].
    // var(|e|) = (5 − 3²/2)/1 = 0.5 → half-width z·√(0.5/2) = 0.5z → mae CI [1.5 − 0.5z, 1.5 + 0.5z].
    const m = accumulate(
      [
        [3, 1],
        [5, 6],
      ],
      1,
    );
    expect(m.count).toBe(3);
    expect(m.labeled_count).toBe(2);
    expect(m.missing_label_rate).toBeCloseTo(1 / 3, 15);
    expect(m.mse).toBe(2.5);
    expect(m.rmse).toBe(Math.sqrt(2.5));
    expect(m.mae).toBe(1.5);
    expect(m.mean_error).toBe(0.5);
    expect(m.r2).toBe(-1.5);
    expect(m.mape).toBeCloseTo(13 / 30, 15);
    expect(m.mape_count).toBe(2);
    expect(m.sum_quad_error).toBe(17);
    expect(m.mse_ci_low).toBe(0); // 2.5 − 2.939946 clipped
    expect(m.mse_ci_high).toBeCloseTo(2.5 + 1.5 * Z_95, 14);
    expect(m.rmse_ci_low).toBe(0);
    expect(m.rmse_ci_high).toBeCloseTo(Math.sqrt(2.5 + 1.5 * Z_95), 14);
    expect(m.mae_ci_low).toBeCloseTo(1.5 - 0.5 * Z_95, 14); // 0.520018
    expect(m.mae_ci_high).toBeCloseTo(1.5 + 0.5 * Z_95, 14); // 2.479982
  });

  it('all y_true equal: SS_tot = 0, so R² is null while the other metrics exist', () => {
    // y = 7 for all; predictions 6, 8, 7.5 → e = 1, −1, −0.5: mse = (1 + 1 + 0.25)/3 = 0.75.
    const m = accumulate([
      [7, 6],
      [7, 8],
      [7, 7.5],
    ]);
    expect(m.r2).toBeNull();
    expect(m.mse).toBe(0.75);
    expect(m.mean_error).toBeCloseTo(-0.5 / 3, 15);
  });

  it('all y_true equal to a value a double cannot hold exactly (0.1 × 1000): still SS_tot = 0', () => {
    // Σy² = 1000 · fl(0.1)² is not exact in a double word, so SS_tot comes out as ±(rounding); it must
    // be recognised as 0, not divided by.
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < 1000; i++) pairs.push([0.1, i % 2 === 0 ? 0.2 : 0.05]);
    expect(accumulate(pairs).r2).toBeNull();
  });

  it('y_true = 0 is left out of MAPE only', () => {
    // (0, 1) → e = −1, no |e/y|; (2, 1) → e = 1, |e/y| = 1/2. mape = (1/2)/1, mse = (1 + 1)/2 = 1.
    const m = accumulate([
      [0, 1],
      [2, 1],
    ]);
    expect(m.labeled_count).toBe(2);
    expect(m.mape_count).toBe(1);
    expect(m.mape).toBe(0.5);
    expect(m.mse).toBe(1);
    expect(m.mean_error).toBe(0);
  });

  it('only y_true = 0: MAPE null with mape_count 0', () => {
    const m = accumulate([[0, 3]]);
    expect(m.mape).toBeNull();
    expect(m.mape_count).toBe(0);
    expect(m.sum_ape).toBe(0);
    expect(m.mse).toBe(9);
  });

  it('negative errors', () => {
    // (1, 2) → e = −1; (1, 4) → e = −3. Σe = −4, Σe² = 10, Σ|e| = 4, Σe⁴ = 1 + 81 = 82.
    // mean_error = −2, mae = 2, mse = 5, mape = (1/1 + 3/1)/2 = 2; y equal → r2 null.
    // var(e²) = (82 − 10²/2)/1 = 32 → half-width z·√16 = 4z → mse CI [0, 5 + 4z] (5 − 7.84 clipped).
    // var(|e|) = (10 − 4²/2)/1 = 2 → half-width z·√1 = z → mae CI [2 − z, 2 + z].
    const m = accumulate([
      [1, 2],
      [1, 4],
    ]);
    expect(m).toMatchObject({ mean_error: -2, mae: 2, mse: 5, mape: 2, sum_error: -4, sum_quad_error: 82, r2: null });
    expect(m.mse_ci_low).toBe(0);
    expect(m.mse_ci_high).toBeCloseTo(5 + 4 * Z_95, 14);
    expect(m.mae_ci_low).toBeCloseTo(2 - Z_95, 14);
    expect(m.mae_ci_high).toBeCloseTo(2 + Z_95, 14);
  });

  it('perfect predictions: zero error, R² 1, intervals collapse to [0, 0]', () => {
    const m = accumulate([
      [1, 1],
      [2, 2],
      [4, 4],
    ]);
    expect(m).toMatchObject({ mse: 0, rmse: 0, mae: 0, r2: 1, mape: 0, mse_ci_low: 0, mse_ci_high: 0, mae_ci_low: 0, mae_ci_high: 0 });
  });

  it('huge values (1e150): squares stay finite, Σe⁴ overflows to Infinity and the MSE interval becomes [0, ∞)', () => {
    // y_true = 1e150·(1, 2, 3), y_pred = 0 → e = y. Σe² = 14e300, mse = 14e300/3; SS_tot = 14e300 − 36e300/3 = 2e300,
    // r2 = 1 − 14/2 = −6. e⁴ ≈ 1e600 overflows: var(e²) cannot be represented, so the honest interval is [0, ∞).
    // var(|e|) = (14e300 − 36e300/3)/2 = 1e300 → mae half-width z·√(1e300/3).
    const m = accumulate([
      [1e150, 0],
      [2e150, 0],
      [3e150, 0],
    ]);
    expect(m.mse! / (14e300 / 3)).toBeCloseTo(1, 14);
    expect(m.r2).toBeCloseTo(-6, 12);
    expect(m.sum_quad_error).toBe(Infinity);
    expect(m.mse_ci_low).toBe(0);
    expect(m.mse_ci_high).toBe(Infinity);
    expect(m.rmse_ci_high).toBe(Infinity);
    expect(m.mae_ci_high! / (2e150 + Z_95 * Math.sqrt(1e300 / 3))).toBeCloseTo(1, 14);
    expect(Object.values(m).some((v) => typeof v === 'number' && Number.isNaN(v))).toBe(false);
  });

  it('values beyond 1.3e154 overflow their squares: MSE is Infinity, R² null, nothing is NaN', () => {
    const m = accumulate([
      [1e155, 0],
      [3e155, 0],
    ]);
    expect(m.mse).toBe(Infinity);
    expect(m.rmse).toBe(Infinity);
    expect(m.mae).toBe(2e155);
    expect(m.r2).toBeNull();
    expect(m.sum_sq_y_true).toBe(Infinity);
    expect(Object.values(m).some((v) => typeof v === 'number' && Number.isNaN(v))).toBe(false);
  });
});

describe('metricsFromSums', () => {
  it('takes plain doubles as double words', () => {
    // The two-label set above, from its sums.
    const m = metricsFromSums({
      count: 3,
      labeled_count: 2,
      mape_count: 2,
      sum_error: dw(1),
      sum_sq_error: dw(5),
      sum_abs_error: dw(3),
      sum_quad_error: dw(17),
      sum_ape: dw(13 / 15),
      sum_y_true: dw(8),
      sum_sq_y_true: dw(34),
    });
    expect(m).toMatchObject({ mse: 2.5, mae: 1.5, mean_error: 0.5, r2: -1.5 });
  });

  it('treats an SS_tot within the sums’ rounding as zero', () => {
    // Σy² = 1e18 + 128 (one ulp) against Σy = 1e12, n = 1e6: (Σy)²/n = 1e18, SS_tot = 128, below 4·2^-53·1e18 ≈ 444 → null.
    const base = {
      count: 1e6,
      labeled_count: 1e6,
      mape_count: 1e6,
      sum_error: dw(0),
      sum_sq_error: dw(1),
      sum_abs_error: dw(1),
      sum_quad_error: dw(1),
      sum_ape: dw(1e-6),
      sum_y_true: dw(1e12),
      sum_sq_y_true: dw(1e18 + 128),
    };
    expect(metricsFromSums({ ...base, sum_relative_error: 2 ** -53 }).r2).toBeNull();
    // With double-word sums the same 128 is a real spread: R² = 1 − 1/128.
    expect(metricsFromSums(base).r2).toBeCloseTo(1 - 1 / 128, 14);
  });
});

describe('rollupMetrics', () => {
  it('equals the metrics of the concatenated data to 1e-12', () => {
    const next = random(5);
    const all = new MetricAccumulator();
    const days: MetricValues[] = [];
    for (let day = 0; day < 7; day++) {
      const acc = new MetricAccumulator();
      const n = 500 + day * 300;
      for (let i = 0; i < n; i++) {
        const yTrue = 100 + 40 * (next() - 0.5) + day;
        const yPred = yTrue + 10 * (next() - 0.45);
        const delay = next() * 86_400;
        if (next() < 0.2) {
          acc.addUnlabeled();
          all.addUnlabeled();
        } else {
          acc.addLabeled(yTrue, yPred, delay);
          all.addLabeled(yTrue, yPred, delay);
        }
      }
      days.push(acc.finish());
    }
    const expected = all.finish();
    const rolled = rollupMetrics(days);
    expect(rolled.count).toBe(expected.count);
    expect(rolled.labeled_count).toBe(expected.labeled_count);
    expect(rolled.mape_count).toBe(expected.mape_count);
    for (const field of DERIVED) {
      const want = expected[field]!;
      expect(Math.abs(rolled[field]! - want) / Math.abs(want), field).toBeLessThan(1e-12);
    }
    for (const field of ['sum_error', 'sum_sq_error', 'sum_abs_error', 'sum_quad_error', 'sum_ape', 'sum_y_true', 'sum_sq_y_true'] as const) {
      expect(Math.abs(rolled[field] - expected[field]) / Math.abs(expected[field]), field).toBeLessThan(1e-15);
    }
  });

  it('of no records is all null with zero counts', () => {
    const r = rollupMetrics([]);
    expect(r.count).toBe(0);
    expect(r.missing_label_rate).toBeNull();
    expect(r.mse).toBeNull();
  });

  it('of days with and without labels', () => {
    const labeled: SumRecord = {
      count: 2,
      labeled_count: 2,
      mape_count: 2,
      sum_error: 1,
      sum_sq_error: 5,
      sum_abs_error: 3,
      sum_quad_error: 17,
      sum_ape: 13 / 15,
      sum_y_true: 8,
      sum_sq_y_true: 34,
    };
    const unlabeled: SumRecord = { ...labeled, count: 4, labeled_count: 0, mape_count: 0, sum_error: 0, sum_sq_error: 0, sum_abs_error: 0, sum_quad_error: 0, sum_ape: 0, sum_y_true: 0, sum_sq_y_true: 0 };
    const r = rollupMetrics([labeled, unlabeled]);
    // The two-label set again, with 4 more unlabeled predictions: missing = 4/6.
    expect(r).toMatchObject({ count: 6, labeled_count: 2, mse: 2.5, mae: 1.5, r2: -1.5 });
    expect(r.missing_label_rate).toBeCloseTo(4 / 6, 15);
  });
});
