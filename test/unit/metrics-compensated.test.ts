import { describe, expect, it } from 'vitest';
import { CompensatedSum, dw, dwAdd, dwDiv, dwMul, dwSub, dwToNumber, type DoubleWord } from '../../src/metrics/compensated.js';
import { seededRandom as random } from '../../src/demo/generate.js';

/** An exact binary rational: value = num · 2^-SHIFT. Every finite double is one (its exponent is >= -1074). */
const SHIFT = 1200n;

/** The exact value of a finite double as num · 2^-SHIFT. */
function exact(x: number): bigint {
  if (x === 0) return 0n;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = BigInt((biased === 0 ? 1 : biased) - 1075);
  const magnitude = mantissa << (exponent + SHIFT);
  return negative ? -magnitude : magnitude;
}

/** The exact value of a double word. */
function exactWord(a: DoubleWord): bigint {
  return exact(a.hi) + exact(a.lo);
}

/** |approx − truth| / |truth| as a double, computed exactly then rounded. */
function relativeError(approx: bigint, truth: bigint): number {
  const diff = approx > truth ? approx - truth : truth - approx;
  const scale = 10n ** 40n;
  return Number((diff * scale) / (truth < 0n ? -truth : truth)) / 1e40;
}


/** A random double with a random sign and a magnitude spread over 10^-scale … 10^scale. */
function wideDouble(next: () => number, scale: number): number {
  return (next() < 0.5 ? -1 : 1) * (1 + next()) * 10 ** Math.round((next() * 2 - 1) * scale);
}

describe('CompensatedSum', () => {
  it('keeps the small terms that naive summation rounds away', () => {
    const values = [1e16, 1, -1e16, 1];
    const sum = new CompensatedSum();
    let naive = 0;
    for (const v of values) {
      sum.add(v);
      naive += v;
    }
    // Exactly 2; naive: 1e16 + 1 rounds to 1e16 (ulp 2, tie to even), − 1e16 → 0, + 1 → 1.
    expect(sum.value).toBe(2);
    expect(naive).toBe(1);
  });

  it('sums a million copies of 0.1 to the correctly rounded exact value', () => {
    // The double 0.1 is 3602879701896397 / 2^55; a million of them sum to 3602879701896397e6 / 2^55,
    // whose correctly rounded double is Number(numerator) / 2^55 (one rounding, then an exact scaling).
    const expected = Number(3602879701896397n * 1_000_000n) / 2 ** 55;
    const sum = new CompensatedSum();
    let naive = 0;
    for (let i = 0; i < 1_000_000; i++) {
      sum.add(0.1);
      naive += 0.1;
    }
    expect(sum.value).toBe(expected);
    expect(naive).not.toBe(expected);
  });

  it('holds the exact sum of wide-ranging doubles to about 2^-100 of the running magnitude', () => {
    const next = random(7);
    const sum = new CompensatedSum();
    let truth = 0n;
    let magnitude = 0n;
    for (let i = 0; i < 2000; i++) {
      const x = wideDouble(next, 30);
      sum.add(x);
      truth += exact(x);
      magnitude += exact(Math.abs(x));
    }
    const diff = exactWord(sum) - truth;
    expect(relativeError(magnitude + diff, magnitude)).toBeLessThan(2000 * 2 ** -104);
  });

  it('adds squares exactly, so that Σy² of values near 1e6 is exact', () => {
    const next = random(11);
    const sum = new CompensatedSum();
    let truth = 0n;
    for (let i = 0; i < 1000; i++) {
      // 1e6 + k/1024 needs 30 significant bits; its square needs 60, more than a double holds.
      const y = 1e6 + Math.floor(next() * 2048 - 1024) / 1024;
      sum.addSquare(y);
      truth += exact(y) * exact(y);
    }
    // exact() is scaled by 2^SHIFT, so a product of two is scaled by 2^(2·SHIFT).
    expect(exactWord(sum) << SHIFT).toBe(truth);
  });

  it('adds fourth powers to double-word precision', () => {
    const next = random(13);
    const sum = new CompensatedSum();
    let truth = 0n;
    for (let i = 0; i < 200; i++) {
      const x = wideDouble(next, 10);
      sum.addFourthPower(x);
      const e = exact(x);
      truth += (e * e * e * e) >> (3n * SHIFT);
    }
    expect(relativeError(exactWord(sum), truth)).toBeLessThan(2 ** -98);
  });

  it('merges two partial sums into the same value as one running sum', () => {
    const next = random(17);
    const all = new CompensatedSum();
    const left = new CompensatedSum();
    const right = new CompensatedSum();
    for (let i = 0; i < 10_000; i++) {
      const x = wideDouble(next, 8);
      all.add(x);
      (i % 3 === 0 ? left : right).add(x);
    }
    left.addSum(right);
    expect(left.value).toBe(all.value);
    expect(relativeError(exactWord(left), exactWord(all))).toBeLessThan(2 ** -100);
  });

  it('turns overflow into ±Infinity, never NaN', () => {
    const sum = new CompensatedSum();
    sum.add(1e308);
    sum.add(1e308);
    expect(sum.value).toBe(Infinity);
    sum.add(1);
    expect(sum.value).toBe(Infinity);
    expect(sum.lo).toBe(0);

    const squares = new CompensatedSum();
    squares.addSquare(1e200);
    expect(squares.value).toBe(Infinity);
    const fourth = new CompensatedSum();
    fourth.addFourthPower(1e100); // 1e400
    expect(fourth.value).toBe(Infinity);
    fourth.addFourthPower(2);
    expect(fourth.value).toBe(Infinity);
    const negative = new CompensatedSum();
    negative.add(-1e308);
    negative.add(-1e308);
    expect(negative.value).toBe(-Infinity);
  });
});

describe('double-word operations', () => {
  it('add, subtract, multiply and divide within a few units of 2^-104', () => {
    const next = random(23);
    for (let i = 0; i < 300; i++) {
      const a = dwAdd(dw(wideDouble(next, 20)), dw(wideDouble(next, 4) * 1e-17));
      const b = dwAdd(dw(wideDouble(next, 20)), dw(wideDouble(next, 4) * 1e-17));
      const ea = exactWord(a);
      const eb = exactWord(b);
      // Algorithm 6 is relatively accurate even under cancellation: 3·2^-106 of the result.
      expect(relativeError(exactWord(dwAdd(a, b)), ea + eb)).toBeLessThan(2 ** -102);
      expect(relativeError(exactWord(dwSub(a, b)), ea - eb)).toBeLessThan(2 ** -102);
      // (exactWord(p) · 2^SHIFT) against ea · eb, both scaled by 2^(2·SHIFT).
      expect(relativeError(exactWord(dwMul(a, b)) << SHIFT, ea * eb)).toBeLessThan(2 ** -100);
      // q = a / b: compare q · b against a.
      const q = dwDiv(a, b);
      expect(relativeError((exactWord(q) * eb) >> SHIFT, ea)).toBeLessThan(2 ** -100);
    }
  });

  it('computes Σy² − Σy·(Σy/n) exactly where doubles lose every digit', () => {
    // y = 1e8 + 0.5, 1e8 − 0.5, 1e8 + 0.25: each y² ≈ 1e16 needs 2 more bits than a double has.
    const ys = [1e8 + 0.5, 1e8 - 0.5, 1e8 + 0.25];
    const sy = new CompensatedSum();
    const sy2 = new CompensatedSum();
    let naiveSy = 0;
    let naiveSy2 = 0;
    for (const y of ys) {
      sy.add(y);
      sy2.addSquare(y);
      naiveSy += y;
      naiveSy2 += y * y;
    }
    const ssTot = dwToNumber(dwSub(sy2, dwMul(sy, dwDiv(sy, dw(3)))));
    // Deviations from the mean 1e8 + 1/12: 5/12, −7/12, 2/12 → (25 + 49 + 4)/144 = 78/144 = 0.541666…
    expect(ssTot).toBeCloseTo(78 / 144, 12);
    // Doubles: ulp(3e16) = 4, so the naive difference is off by whole units.
    expect(Math.abs(naiveSy2 - (naiveSy * naiveSy) / 3 - 78 / 144)).toBeGreaterThan(0.4);
  });

  it('multiplies a huge by a tiny operand without a NaN from the Veltkamp split', () => {
    // 1e300 · 134217729 overflows, so the split must be scaled; the product itself is an ordinary 1e295.
    const p = dwMul(dw(1e300), dw(1e-5));
    expect(Number.isFinite(p.lo)).toBe(true);
    expect(relativeError(exactWord(p) << SHIFT, exact(1e300) * exact(1e-5))).toBeLessThan(2 ** -100);
    expect(dwMul(dw(1e300), dw(1e300)).hi).toBe(Infinity);
    expect(dwDiv(dw(1), dw(0)).hi).toBe(Infinity);
  });
});
