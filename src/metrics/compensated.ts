/**
 * Double-word ("double-double") arithmetic: a value is the unevaluated sum hi + lo of two doubles
 * with |lo| <= ulp(hi)/2, which carries about 106 bits of precision. It exists because SPEC §5
 * asks metrics to match an exact computation to 1e-9 on a million values around 1e6, where
 * Σy² − (Σy)²/n cancels about twelve digits and plain doubles keep sixteen.
 *
 * Building blocks (JavaScript has no fused multiply-add, so products are split the Dekker way):
 * - TwoSum (Knuth, TAOCP vol. 2 §4.2.2): a + b = s + e exactly, any magnitudes.
 * - FastTwoSum (Dekker 1971): the same when |a| >= |b|, three flops.
 * - TwoProduct (Dekker 1971, Veltkamp split): a · b = p + e exactly unless it under- or overflows.
 * - Double-word operations follow Joldes, Muller & Popescu, "Tight and rigorous error bounds for basic
 *   building blocks of double-word arithmetic", ACM TOMS 44(2), 2017: algorithm 5 for running sums,
 *   6 for add/subtract, 12 (FMA replaced by TwoProduct) for multiply; division is the long-division
 *   step of Bailey's QD library. Errors are a few units of 2^-106.
 *
 * Overflow: once a sum or product is ±Infinity the result stays ±Infinity with lo = 0, instead of the
 * NaN the error terms (Infinity − Infinity) would otherwise spread into every metric.
 */

/** A double-word value hi + lo, read-only view (CompensatedSum and plain pairs both satisfy it). */
export interface DoubleWord {
  readonly hi: number;
  readonly lo: number;
}

/** 2^27 + 1: Veltkamp's splitter for 53-bit doubles, so each half has at most 26 significant bits. */
const SPLITTER = 134217729;
/** Above this magnitude a · SPLITTER overflows, so the split is done on a scaled-down copy. */
const SPLIT_LIMIT = 2 ** 996;

/** The error of the rounded product a · b (p = fl(a · b)); exact when no under/overflow occurs. */
function productError(a: number, b: number, p: number): number {
  let t = SPLITTER * a;
  const aHi = t - (t - a);
  const aLo = a - aHi;
  t = SPLITTER * b;
  const bHi = t - (t - b);
  const bLo = b - bHi;
  return aLo * bLo - (((p - aHi * bHi) - aLo * bHi) - aHi * bLo);
}

/** The error of p = fl(x²): productError(x, x, p) with the one split shared (2·h·l is exact). */
function squareError(x: number, p: number): number {
  const t = SPLITTER * x;
  const h = t - (t - x);
  const l = x - h;
  return l * l - ((p - h * h) - 2 * h * l);
}

/**
 * The error of fl(a · b) for any finite operands: pre-scales operands so large that the Veltkamp split
 * would overflow (2^996), which the hot-path squaring never needs (a finite x² means |x| < 2^512).
 */
function safeProductError(a: number, b: number, p: number): number {
  if (!Number.isFinite(p)) return 0;
  if (Math.abs(a) > SPLIT_LIMIT || Math.abs(b) > SPLIT_LIMIT) {
    // Scaling by powers of two is exact; the error of (a·2^-28)(b) is 2^-28 times the error of a·b.
    const scale = 2 ** 28;
    const sa = Math.abs(a) > SPLIT_LIMIT ? a / scale : a;
    const sb = sa === a ? b / scale : b;
    const err = productError(sa, sb, sa * sb) * scale;
    return Number.isFinite(err) ? err : 0;
  }
  const err = productError(a, b, p);
  return Number.isFinite(err) ? err : 0;
}

/**
 * A compensated running sum kept as a normalized double word (hi, lo). Each add costs about ten
 * flops and no allocation; the accumulated value is within a few units of 2^-106 per addition of the
 * running magnitude, so a million additions lose nothing a double can show.
 */
export class CompensatedSum implements DoubleWord {
  /** The leading double; equals the correctly rounded sum while no overflow occurred. */
  hi = 0;
  /** The remainder below hi's last bit. */
  lo = 0;

  /** Adds one double. */
  add(x: number): void {
    this.addWord(x, 0);
  }

  /** Adds another sum (merging two accumulators) with the accurate double-word addition. */
  addSum(other: DoubleWord): void {
    const sum = dwAdd(this, other);
    this.hi = sum.hi;
    this.lo = sum.lo;
  }

  /** Adds x² exactly (TwoProduct), not its rounded square: Σy² is the operand of a cancelling difference. */
  addSquare(x: number): void {
    const p = x * x;
    this.addWord(p, Number.isFinite(p) ? squareError(x, p) : 0);
  }

  /**
   * Adds x⁴ to double-word precision: with x² = p + q exactly, x⁴ = p² + 2pq + q², and q² is below
   * 2^-106 of p² so it is dropped. Σe⁴ − (Σe²)²/n cancels when errors have a near-constant magnitude.
   */
  addFourthPower(x: number): void {
    const p = x * x;
    const pp = p * p;
    if (!Number.isFinite(pp)) {
      this.addWord(pp, 0);
      return;
    }
    this.addWord(pp, squareError(p, pp) + 2 * p * squareError(x, p));
  }

  /** The sum rounded to one double. */
  get value(): number {
    return this.hi + this.lo;
  }

  /**
   * Adds the double word (xHi, xLo), which need not be normalized: TwoSum of the leading parts, the
   * tails added in double, then FastTwoSum to renormalize (Joldes et al. algorithm 5, "sloppy"). Its
   * error is a few units of 2^-106 of max(|sum|, |x|), which for a running sum is as good as algorithm 6
   * at half the flops; the hot path runs this seven times per labeled record.
   */
  private addWord(xHi: number, xLo: number): void {
    const aHi = this.hi;
    const sh = aHi + xHi;
    if (!Number.isFinite(sh)) {
      // Overflow (or an infinite input): keep ±Infinity / NaN in hi, do not spread NaN through lo.
      this.hi = sh;
      this.lo = 0;
      return;
    }
    const bb = sh - aHi;
    const sl = aHi - (sh - bb) + (xHi - bb) + (this.lo + xLo);
    const zh = sh + sl;
    this.lo = sl - (zh - sh);
    this.hi = zh;
  }
}

/** A double word from one double (or a normalized pair). */
export function dw(hi: number, lo = 0): DoubleWord {
  return { hi, lo };
}

/** The double nearest to a double word. */
export function dwToNumber(a: DoubleWord): number {
  return a.hi + a.lo;
}

/**
 * a + b in double-word arithmetic (Joldes et al. algorithm 6, AccurateDWPlusDW): relative error
 * <= 3·2^-106 of the result even when a and b cancel, which SS_tot = Σy² − (Σy)²/n relies on.
 */
export function dwAdd(a: DoubleWord, b: DoubleWord): DoubleWord {
  const sh = a.hi + b.hi;
  if (!Number.isFinite(sh)) return { hi: sh, lo: 0 };
  let bb = sh - a.hi;
  const sl = a.hi - (sh - bb) + (b.hi - bb);
  const th = a.lo + b.lo;
  bb = th - a.lo;
  const tl = a.lo - (th - bb) + (b.lo - bb);
  const c = sl + th;
  const vh = sh + c;
  const vl = c - (vh - sh);
  const w = tl + vl;
  const zh = vh + w;
  return { hi: zh, lo: w - (zh - vh) };
}

/** a − b in double-word arithmetic. */
export function dwSub(a: DoubleWord, b: DoubleWord): DoubleWord {
  return dwAdd(a, { hi: -b.hi, lo: -b.lo });
}

/** a · b in double-word arithmetic (Joldes et al. algorithm 12 with the FMAs replaced by TwoProduct). */
export function dwMul(a: DoubleWord, b: DoubleWord): DoubleWord {
  const ch = a.hi * b.hi;
  if (!Number.isFinite(ch)) return { hi: ch, lo: 0 };
  const cl1 = safeProductError(a.hi, b.hi, ch);
  const cl2 = a.hi * b.lo + a.lo * b.hi;
  const cl3 = cl1 + cl2;
  const hi = ch + cl3;
  return { hi, lo: cl3 - (hi - ch) };
}

/**
 * a / b in double-word arithmetic: a first quotient, the exact-enough remainder a − q·b, then one
 * correction (the classic long-division step of Dekker's and Bailey's QD library; error ~ 2^-104).
 */
export function dwDiv(a: DoubleWord, b: DoubleWord): DoubleWord {
  const q1 = a.hi / b.hi;
  if (!Number.isFinite(q1)) return { hi: q1, lo: 0 };
  const remainder = dwSub(a, dwMul(b, { hi: q1, lo: 0 }));
  const q2 = (remainder.hi + remainder.lo) / b.hi;
  const hi = q1 + q2;
  return { hi, lo: q2 - (hi - q1) };
}
