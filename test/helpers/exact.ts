/**
 * Exact arithmetic for the metrics tests: doubles as BigInt rationals (every double is m·2^e), sums
 * and products without rounding, and a correctly rounded conversion back to a double. The reference
 * the exact-sum and roll-up tests compare with (SPEC §5.1).
 */

/** A rational num/den with den > 0. */
export interface Rational {
  num: bigint;
  den: bigint;
}

const view = new DataView(new ArrayBuffer(8));

/** A finite double as an exact rational. */
export function exactOf(x: number): Rational {
  if (!Number.isFinite(x)) throw new Error(`exactOf: ${x} is not finite`);
  if (x === 0) return { num: 0n, den: 1n };
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const exponent = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let e: number;
  if (exponent === 0) e = -1074;
  else {
    mantissa |= 1n << 52n;
    e = exponent - 1075;
  }
  const num = negative ? -mantissa : mantissa;
  return e >= 0 ? { num: num << BigInt(e), den: 1n } : { num, den: 1n << BigInt(-e) };
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function normal(num: bigint, den: bigint): Rational {
  if (den < 0n) [num, den] = [-num, -den];
  // Denominators here are powers of two or small products; reduce only powers of two cheaply.
  if (num === 0n) return { num: 0n, den: 1n };
  const g = gcd(num, den);
  return { num: num / g, den: den / g };
}

export const ZERO: Rational = { num: 0n, den: 1n };

export function add(a: Rational, b: Rational): Rational {
  if (a.den === b.den) return normal(a.num + b.num, a.den);
  return normal(a.num * b.den + b.num * a.den, a.den * b.den);
}

export function sub(a: Rational, b: Rational): Rational {
  return add(a, { num: -b.num, den: b.den });
}

export function mul(a: Rational, b: Rational): Rational {
  return normal(a.num * b.num, a.den * b.den);
}

export function div(a: Rational, b: Rational): Rational {
  if (b.num === 0n) throw new Error('div by 0');
  return normal(a.num * b.den, a.den * b.num);
}

export function int(n: number): Rational {
  return { num: BigInt(n), den: 1n };
}

function bitLength(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

/** The double nearest to a rational (ties to even), via a 64-bit quotient with a sticky bit. */
export function toNumber(r: Rational): number {
  if (r.num === 0n) return 0;
  const negative = r.num < 0n;
  const num = negative ? -r.num : r.num;
  // Scale so the integer quotient has 64 bits; the remainder becomes a sticky bit.
  const shift = 64 - (bitLength(num) - bitLength(r.den));
  const scaledNum = shift >= 0 ? num << BigInt(shift) : num;
  const scaledDen = shift >= 0 ? r.den : r.den << BigInt(-shift);
  let q = scaledNum / scaledDen;
  if (q * scaledDen !== scaledNum) q |= 1n;
  // Number(q) rounds to nearest even (q < 2^66, sticky below the 53 kept bits); the power of two is exact.
  const value = Number(q) * 2 ** -shift;
  return negative ? -value : value;
}

/** |a − b| / |b|, 0 when both are 0. */
export function relativeDifference(a: number, b: number): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.abs(b);
}
