/**
 * The metric formulas of SPEC §5, as pure functions of sufficient statistics. One function serves both
 * the records of a run (each exact sum rounded to a pair hi + lo, SPEC §5.1) and roll-ups over many
 * stored records (their pairs added exactly and rounded once more), so the two never disagree on a rule.
 *
 * Every cancelling difference (SS_tot = Σy² − (Σy)²/n and the two sample variances behind the
 * confidence intervals) is evaluated in double-word arithmetic: with y ≈ 1e6 ± 1 the difference is
 * twelve orders of magnitude below its operands, more than a double's sixteen digits can absorb
 * while keeping the 1e-9 agreement SPEC §5 asks for.
 */
import { type DoubleWord, ExactSum, dw, dwDiv, dwMul, dwSub, dwToNumber } from './compensated.js';

/** The two-sided 95% normal quantile, written as SPEC §5 writes it. */
export const Z_95 = 1.959964;

/** Unit roundoff of IEEE-754 binary64 (half an ulp of 1). */
const UNIT_ROUNDOFF = 2 ** -53;

/** The numeric fields of one ModelMetrics record (SPEC §5), named as in the Avro schema. */
export interface MetricValues {
  count: number;
  labeled_count: number;
  missing_label_rate: number | null;
  mse: number | null;
  rmse: number | null;
  mae: number | null;
  mean_error: number | null;
  r2: number | null;
  mape: number | null;
  mape_count: number;
  mse_ci_low: number | null;
  mse_ci_high: number | null;
  rmse_ci_low: number | null;
  rmse_ci_high: number | null;
  mae_ci_low: number | null;
  mae_ci_high: number | null;
  label_delay_p50_s: number | null;
  label_delay_p95_s: number | null;
  label_delay_max_s: number | null;
  invalid_count: number;
  duplicate_prediction_count: number;
  duplicate_label_count: number;
  negative_delay_count: number;
  misplaced_count: number;
  sum_error: number;
  sum_error_lo: number;
  sum_sq_error: number;
  sum_sq_error_lo: number;
  sum_abs_error: number;
  sum_abs_error_lo: number;
  sum_quad_error: number;
  sum_quad_error_lo: number;
  sum_ape: number;
  sum_ape_lo: number;
  sum_y_true: number;
  sum_y_true_lo: number;
  sum_sq_y_true: number;
  sum_sq_y_true_lo: number;
}

/** The seven sufficient statistics of SPEC §5, in schema order; each has a `_lo` companion in v2 (§5.1). */
export const SUM_FIELDS = ['sum_error', 'sum_sq_error', 'sum_abs_error', 'sum_quad_error', 'sum_ape', 'sum_y_true', 'sum_sq_y_true'] as const;

/** The metrics that are functions of the counts and the seven sums alone. */
export type DerivedMetrics = Pick<
  MetricValues,
  | 'missing_label_rate'
  | 'mse'
  | 'rmse'
  | 'mae'
  | 'mean_error'
  | 'r2'
  | 'mape'
  | 'mse_ci_low'
  | 'mse_ci_high'
  | 'rmse_ci_low'
  | 'rmse_ci_high'
  | 'mae_ci_low'
  | 'mae_ci_high'
>;

/** Counts and sums over the labeled records of a slice, the sums as double words (a double is {hi, lo: 0}). */
export interface SufficientStats {
  count: number;
  labeled_count: number;
  mape_count: number;
  sum_error: DoubleWord;
  sum_sq_error: DoubleWord;
  sum_abs_error: DoubleWord;
  sum_quad_error: DoubleWord;
  sum_ape: DoubleWord;
  sum_y_true: DoubleWord;
  sum_sq_y_true: DoubleWord;
  /**
   * A bound on the relative rounding error each sum already carries (of its own magnitude, or of
   * Σ|y| for Σy). It decides when SS_tot is indistinguishable from 0. Default: what a double-word
   * accumulation of labeled_count terms can lose, 4·n·2^-106.
   */
  sum_relative_error?: number;
}

/**
 * What a stored ModelMetrics record contributes to a roll-up (the fields of SPEC §5, snake_case): the
 * pairs of §5.1; a v1 record has no `_lo` fields (or reads them as the default 0).
 */
export type SumRecord = {
  count: number;
  labeled_count: number;
  mape_count: number;
} & { [K in (typeof SUM_FIELDS)[number]]: number } & { [K in `${(typeof SUM_FIELDS)[number]}_lo`]?: number };

/** A roll-up: the added counts and sums, and the metrics recomputed from them. */
export type RollupMetrics = { count: number; labeled_count: number; mape_count: number } & { [K in (typeof SUM_FIELDS)[number] | `${(typeof SUM_FIELDS)[number]}_lo`]: number } & DerivedMetrics;

/** NaN (an Infinity − Infinity after overflow) is written as null: "not computable", never a fake number. */
function finiteOrNull(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

/** sum / n rounded once: the double-word quotient keeps the low part of the sum. */
function mean(sum: DoubleWord, n: number): number {
  return dwToNumber(dwDiv(sum, dw(n)));
}

/** sumSquares − sum²/n (Σ of squared deviations), in double words; sum²/n as sum·(sum/n) so it overflows late. */
function centeredSumOfSquares(sumSquares: DoubleWord, sum: DoubleWord, n: number): DoubleWord {
  return dwSub(sumSquares, dwMul(sum, dwDiv(sum, dw(n))));
}

/**
 * The sample variance (n − 1) from Σx² and Σx. A tiny negative result is rounding of a zero variance and
 * is clamped to 0; a NaN means Σx² overflowed together with the subtrahend, and the honest bound is ∞.
 */
function sampleVariance(sumSquares: DoubleWord, sum: DoubleWord, n: number): number {
  const centered = dwToNumber(centeredSumOfSquares(sumSquares, sum, n));
  if (Number.isNaN(centered)) return Infinity;
  return centered > 0 ? centered / (n - 1) : 0;
}

/** The 95% normal interval center ± z·sqrt(variance/n), the low end clipped at 0 (SPEC §5). */
function interval(center: number, variance: number, n: number): [number | null, number | null] {
  const halfWidth = Z_95 * Math.sqrt(variance / n);
  return [finiteOrNull(Math.max(0, center - halfWidth)), finiteOrNull(center + halfWidth)];
}

/** R² = (SS_tot − SS_res) / SS_tot in double words (exact numerator, so an r2 near 0 keeps its digits). */
function rSquared(s: SufficientStats, n: number): number | null {
  if (n < 2) return null;
  const ssTot = centeredSumOfSquares(s.sum_sq_y_true, s.sum_y_true, n);
  const ssTotValue = dwToNumber(ssTot);
  if (!Number.isFinite(ssTotValue)) return null;
  // SS_tot carries at most ~3 sum_relative_error of Σy² from the sums' own rounding: anything below that
  // is "SS_tot = 0" (all y equal), which SPEC §5 maps to null rather than to 1 − SS_res/noise.
  const relativeError = s.sum_relative_error ?? 4 * n * UNIT_ROUNDOFF * UNIT_ROUNDOFF;
  if (ssTotValue <= 4 * relativeError * Math.abs(dwToNumber(s.sum_sq_y_true))) return null;
  return finiteOrNull(dwToNumber(dwDiv(dwSub(ssTot, s.sum_sq_error), ssTot)));
}

/** Every derived metric of SPEC §5 from counts and sums; the one implementation for days and roll-ups. */
export function metricsFromSums(s: SufficientStats): DerivedMetrics {
  const n = s.labeled_count;
  const missingLabelRate = s.count > 0 ? (s.count - n) / s.count : null;
  if (n === 0) {
    return {
      missing_label_rate: missingLabelRate,
      mse: null,
      rmse: null,
      mae: null,
      mean_error: null,
      r2: null,
      mape: null,
      mse_ci_low: null,
      mse_ci_high: null,
      rmse_ci_low: null,
      rmse_ci_high: null,
      mae_ci_low: null,
      mae_ci_high: null,
    };
  }
  const mse = mean(s.sum_sq_error, n);
  const mae = mean(s.sum_abs_error, n);
  let mseCi: [number | null, number | null] = [null, null];
  let maeCi: [number | null, number | null] = [null, null];
  if (n >= 2) {
    mseCi = interval(mse, sampleVariance(s.sum_quad_error, s.sum_sq_error, n), n);
    maeCi = interval(mae, sampleVariance(s.sum_sq_error, s.sum_abs_error, n), n);
  }
  return {
    missing_label_rate: missingLabelRate,
    mse: finiteOrNull(mse),
    rmse: finiteOrNull(Math.sqrt(mse)),
    mae: finiteOrNull(mae),
    mean_error: finiteOrNull(mean(s.sum_error, n)),
    r2: rSquared(s, n),
    mape: s.mape_count > 0 ? finiteOrNull(mean(s.sum_ape, s.mape_count)) : null,
    mse_ci_low: mseCi[0],
    mse_ci_high: mseCi[1],
    rmse_ci_low: mseCi[0] === null ? null : Math.sqrt(mseCi[0]),
    rmse_ci_high: mseCi[1] === null ? null : Math.sqrt(mseCi[1]),
    mae_ci_low: maeCi[0],
    mae_ci_high: maeCi[1],
  };
}

/**
 * Metrics over many stored records (a week, a version's lifetime, the hours of a day) from their
 * sums, without rereading rows: each record's pair sum_X + sum_X_lo is added exactly, the total
 * rounded once to a pair, and put through the same formulas as a daily record (SPEC §5.1). So a
 * roll-up is as exact as a direct computation over the rows, and the roll-up of one record repeats
 * its metrics bit for bit.
 *
 * A v1 record (no `_lo`, or all of them 0 as a v1 file reads) carries one double rounding per sum;
 * then the bound that decides "SS_tot = 0" (r2 null) widens to that rounding, as before v2.
 */
export function rollupMetrics(records: Iterable<SumRecord>): RollupMetrics {
  let count = 0;
  let labeledCount = 0;
  let mapeCount = 0;
  let roundedOnce = false;
  const sums = SUM_FIELDS.map(() => new ExactSum());
  for (const r of records) {
    count += r.count;
    labeledCount += r.labeled_count;
    mapeCount += r.mape_count;
    let allLowZero = true;
    for (let i = 0; i < SUM_FIELDS.length; i++) {
      const field = SUM_FIELDS[i]!;
      const lo = r[`${field}_lo`] ?? 0;
      if (lo !== 0) allLowZero = false;
      sums[i]!.add(r[field]);
      sums[i]!.add(lo);
    }
    if (allLowZero && r.labeled_count > 0) roundedOnce = true;
  }
  const pairs = sums.map((sum) => sum.pair());
  const [sumError, sumSq, sumAbs, sumQuad, sumApe, sumY, sumSqY] = pairs as [DoubleWord, DoubleWord, DoubleWord, DoubleWord, DoubleWord, DoubleWord, DoubleWord];
  const derived = metricsFromSums({
    count,
    labeled_count: labeledCount,
    mape_count: mapeCount,
    sum_error: sumError,
    sum_sq_error: sumSq,
    sum_abs_error: sumAbs,
    sum_quad_error: sumQuad,
    sum_ape: sumApe,
    sum_y_true: sumY,
    sum_sq_y_true: sumSqY,
    // v1 sums were each rounded to a double once; v2 pairs are exact to ~2^-106 (the default bound).
    ...(roundedOnce ? { sum_relative_error: UNIT_ROUNDOFF + 4 * labeledCount * UNIT_ROUNDOFF * UNIT_ROUNDOFF } : {}),
  });
  const out: Record<string, number> = {};
  SUM_FIELDS.forEach((field, i) => {
    out[field] = pairs[i]!.hi;
    out[`${field}_lo`] = pairs[i]!.lo;
  });
  return { count, labeled_count: labeledCount, mape_count: mapeCount, ...(out as { [K in (typeof SUM_FIELDS)[number] | `${(typeof SUM_FIELDS)[number]}_lo`]: number }), ...derived };
}
