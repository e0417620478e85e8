/**
 * SPEC §5: "metrics agree with an exact computation to a relative 1e-9 on a million records with values
 * around 1e6". Every y_true, y_pred and error below is a multiple of 2^-10 near 1e6, hence an exact
 * double, so the exact metrics are rationals that BigInt computes without any rounding; the square roots
 * and the final conversions are done in 200-bit fixed point.
 */
import { describe, expect, it } from 'vitest';
import { MetricAccumulator } from '../../src/metrics/accumulator.js';
import { CompensatedSum, dw, dwDiv, dwMul, dwSub, dwToNumber } from '../../src/metrics/compensated.js';
import type { MetricValues } from '../../src/metrics/formulas.js';
import { seededRandom as random } from '../../src/demo/generate.js';

const N = 1_000_000;
/** Values are integers scaled by 1/SCALE. */
const SCALE = 1024;
/** y_true = 1e6 + kt/1024 with kt in [−1024, 1024]: y = 1e6 ± 1, so SS_tot is 1e-12 of Σy². */
const KT_MIN = -1024;
const KT_MAX = 1024;
/** y_pred = y_true + j/1024 with j in [−400, 624]: errors e = −j/1024, biased so mean_error is not ~0. */
const J_MIN = -400;
const J_MAX = 624;
/** Fractional bits of the fixed-point reference. */
const K = 200n;
const ONE = 1n << K;


/** floor(√v) for v >= 0 (Newton from an over-estimate). */
function isqrt(v: bigint): bigint {
  if (v < 2n) return v;
  let x = BigInt(Math.ceil(Math.sqrt(Number(v)) * (1 + 1e-12))) + 1n;
  for (;;) {
    const y = (x + v / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** num/den as a K-bit fixed-point integer (truncated: an error of 2^-200). */
function fixed(num: bigint, den: bigint): bigint {
  return (num << K) / den;
}

/** A fixed-point value as the nearest double (Number(bigint) rounds to nearest; the 2^-K scaling is exact). */
function toNumber(f: bigint): number {
  return Number(f) / 2 ** Number(K);
}

/** √ of a fixed-point value, in fixed point. */
function sqrtFixed(f: bigint): bigint {
  return isqrt(f << K);
}

/** The exact metrics of the generated data, from its histograms. */
function exactMetrics(countByKt: Float64Array, countByJ: Float64Array, absJByKt: Float64Array): Record<string, number> {
  const n = BigInt(N);
  const s = BigInt(SCALE);
  const c = BigInt(1e6 * SCALE);
  let sumE = 0n; // Σ E with E = scaled error = −j
  let sumE2 = 0n;
  let sumAbsE = 0n;
  let sumE4 = 0n;
  for (let i = 0; i < countByJ.length; i++) {
    const count = BigInt(countByJ[i]!);
    const j = BigInt(i + J_MIN);
    const e = -j;
    sumE += count * e;
    sumE2 += count * e * e;
    sumAbsE += count * (e < 0n ? -e : e);
    sumE4 += count * e * e * e * e;
  }
  let sumY = 0n; // Σ Y with Y = scaled y_true = 1024e6 + kt
  let sumY2 = 0n;
  let apeFixed = 0n; // Σ |e/y| = Σ |E|/Y, each term truncated at 2^-200
  for (let i = 0; i < countByKt.length; i++) {
    const count = BigInt(countByKt[i]!);
    const y = c + BigInt(i + KT_MIN);
    sumY += count * y;
    sumY2 += count * y * y;
    apeFixed += fixed(BigInt(absJByKt[i]!), y);
  }
  // z = 1.959964 = 1959964 / 10^6.
  const z2num = 1959964n * 1959964n;
  const z2den = 10n ** 12n;
  const mse = fixed(sumE2, s * s * n);
  const mae = fixed(sumAbsE, s * n);
  // mse half-width² = z²·var(e²)/n, var(e²) = (n·ΣE⁴ − (ΣE²)²) / (n(n − 1)·s⁴).
  const mseHalf = isqrt(fixed(z2num * (n * sumE4 - sumE2 * sumE2), z2den * n * n * (n - 1n) * s ** 4n) << K);
  // mae half-width² = z²·var(|e|)/n, var(|e|) = (n·ΣE² − (Σ|E|)²) / (n(n − 1)·s²).
  const maeHalf = isqrt(fixed(z2num * (n * sumE2 - sumAbsE * sumAbsE), z2den * n * n * (n - 1n) * s * s) << K);
  const mseLow = mse > mseHalf ? mse - mseHalf : 0n;
  const ssTot = n * sumY2 - sumY * sumY; // n·s²·SS_tot
  return {
    mse: toNumber(mse),
    rmse: toNumber(sqrtFixed(mse)),
    mae: toNumber(mae),
    mean_error: toNumber(fixed(sumE, s * n)),
    // r2 = 1 − SS_res/SS_tot = (n·ΣY² − (ΣY)² − n·ΣE²) / (n·ΣY² − (ΣY)²).
    r2: toNumber(fixed(ssTot - n * sumE2, ssTot)),
    mape: toNumber(apeFixed / n),
    mse_ci_low: toNumber(mseLow),
    mse_ci_high: toNumber(mse + mseHalf),
    rmse_ci_low: toNumber(sqrtFixed(mseLow)),
    rmse_ci_high: toNumber(sqrtFixed(mse + mseHalf)),
    mae_ci_low: toNumber(mae > maeHalf ? mae - maeHalf : 0n),
    mae_ci_high: toNumber(mae + maeHalf),
  };
}

/** |a − b| / |b|. */
function relativeError(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe('precision on a million records around 1e6 (SPEC §5)', () => {
  it('matches an exact BigInt computation to 1e-9, where naive summation does not', () => {
    const next = random(2024);
    const acc = new MetricAccumulator();
    const countByKt = new Float64Array(KT_MAX - KT_MIN + 1);
    const absJByKt = new Float64Array(KT_MAX - KT_MIN + 1);
    const countByJ = new Float64Array(J_MAX - J_MIN + 1);
    // Naive sums, to show the compensation is what makes the difference.
    let naiveSumY = 0;
    let naiveSumSqY = 0;
    let naiveSumSqError = 0;
    // Compensated sums of rounded squares (what the products alone would give).
    const roundedSqY = new CompensatedSum();
    for (let i = 0; i < N; i++) {
      const kt = KT_MIN + Math.floor(next() * (KT_MAX - KT_MIN + 1));
      const j = J_MIN + Math.floor(next() * (J_MAX - J_MIN + 1));
      const yTrue = 1e6 + kt / SCALE;
      const yPred = yTrue + j / SCALE;
      acc.addLabeled(yTrue, yPred, next() * 86_400);
      countByKt[kt - KT_MIN]!++;
      absJByKt[kt - KT_MIN]! += Math.abs(j);
      countByJ[j - J_MIN]!++;
      const e = yTrue - yPred;
      naiveSumY += yTrue;
      naiveSumSqY += yTrue * yTrue;
      naiveSumSqError += e * e;
      roundedSqY.add(yTrue * yTrue);
    }
    // The histograms are sums of integers below 2^53, hence exact.
    expect(absJByKt.every((v) => Number.isSafeInteger(v))).toBe(true);

    const exact = exactMetrics(countByKt, countByJ, absJByKt);
    const m: MetricValues = acc.finish();
    expect(m.labeled_count).toBe(N);
    expect(m.mape_count).toBe(N);
    for (const [field, want] of Object.entries(exact)) {
      const got = m[field as keyof MetricValues];
      expect(got, field).not.toBeNull();
      expect(relativeError(got as number, want), field).toBeLessThanOrEqual(1e-9);
    }
    // The data is what the test claims: a fair R² and a positive lower MSE bound.
    expect(exact.r2).toBeGreaterThan(0.5);
    expect(exact.mse_ci_low).toBeGreaterThan(0);

    // Naive: Σy² ≈ 1e18 has an ulp of 128, and a million roundings swamp SS_tot ≈ 3e5.
    const naiveR2 = 1 - naiveSumSqError / (naiveSumSqY - (naiveSumY * naiveSumY) / N);
    expect(relativeError(naiveR2, exact.r2!)).toBeGreaterThan(1e-9);
    // Even compensated sums and a double-word SS_tot fail if Σy² adds the rounded y·y (60-bit squares cut
    // to 53 bits: ±64·2^-13 each, ~0.05 after a million, against SS_tot ≈ 3e5 and 1e-9 of r2).
    const ssTotRounded = dwToNumber(dwSub(roundedSqY, dwMul(acc.pairOf("sum_y_true"), dwDiv(acc.pairOf("sum_y_true"), dw(N)))));
    const roundedR2 = 1 - m.sum_sq_error / ssTotRounded;
    expect(relativeError(roundedR2, exact.r2!)).toBeGreaterThan(1e-9);
  });
});
