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
 *
 * Exact sums (SPEC §5.1, below): ExactSumBank and ExactSum add doubles without any rounding in
 * 32-bit limbs, ExpansionSum (Shewchuk) takes the rare terms and does the one final rounding, so the
 * stored pairs sum_X + sum_X_lo do not depend on the order records were added in. CompensatedSum
 * (double-word, not exact) stays for callers that add a few stored pairs.
 *
 * Length: over ~400 lines because the double-word arithmetic, the limb superaccumulator
 * (ExactSum/ExactSumBank) and the expansion it falls back to share the error-free transformations
 * and must round identically; they are one numerical unit, tested together (metrics-exact.test.ts).
 */

import { StateFormatError, type StateReader, type StateWriter } from './state-codec.js';

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

/**
 * An exact running sum of doubles (SPEC §5.1), order-independent to the bit: a fixed-point
 * "superaccumulator" of 32-bit limbs (in the style of Neal's xsum and the Kulisch accumulator).
 * Limb i holds a double that is a multiple of 2^(32i − 1088); a term is cut at limb boundaries into
 * two or three pieces (a rounding to a multiple of the limb unit by the 1.5·2^(u+52) trick, then the
 * exact remainder), each added to its limb without rounding while the limb stays below 2^53 units;
 * carries are propagated every 2^19 adds. Terms outside the limbs' range (and ±∞, NaN) go to an
 * ExpansionSum instead. The value is the exact sum of every term added, whatever their order or merge
 * tree; `pair` rounds it once, through the expansion. One sum of an ExactSumBank (below).
 *
 * Cost: ~3 adds and 2 roundings per term, against 16 TwoSums for an expansion of Σe⁴.
 */
export class ExactSum {
  private readonly bank = new ExactSumBank(1);

  /** Adds one double exactly. */
  add(x: number): void {
    this.bank.add(0, x);
  }

  /** Adds another exact sum (merging accumulators): exact, so merge trees do not change the result. */
  addSum(other: ExactSum): void {
    this.bank.merge(other.bank);
  }

  /** The exact sum correctly rounded to one double (round half to even). */
  get value(): number {
    return this.bank.pair(0).hi;
  }

  /** The exact sum rounded to about 106 bits: hi = round(exact), lo = round(exact − hi). */
  pair(): DoubleWord {
    return this.bank.pair(0);
  }
}

/**
 * Several ExactSums in one Float64Array: the seven sufficient statistics of an accumulator, which
 * every labeled record updates together. Each sum owns a window of BANK_WINDOW limbs (320 bits),
 * placed on its first term and shifted when a term needs limbs above it (the bottom limbs go into
 * the sum's expansion, exactly); terms below the window, or outside the fast range, go to the
 * expansion too. One array and no object per sum keep the limbs of one record's terms in a few cache
 * lines, which matters with thousands of accumulators (combos × label-age buckets × hours).
 */
export class ExactSumBank {
  private readonly limbs: Float64Array;
  /** Per sum: the limb index of its window's first limb; NaN until its first term. */
  private readonly offsets: Float64Array;
  private readonly rare: Array<ExpansionSum | undefined>;
  /** Adds since the last carry propagation (over all sums: a bound for each). */
  private pending = 0;

  constructor(readonly size: number) {
    this.limbs = new Float64Array(size * BANK_WINDOW);
    this.offsets = new Float64Array(size).fill(NaN);
    this.rare = new Array<ExpansionSum | undefined>(size).fill(undefined);
  }

  /** Adds x to sum `index` exactly. */
  add(index: number, x: number): void {
    if (x === 0) return;
    EXPONENT_VIEW[0] = x;
    const biased = (EXPONENT_WORDS[1]! >>> 20) & 0x7ff;
    if (biased < FAST_MIN_BIASED || biased > FAST_MAX_BIASED) {
      this.addRare(index, x);
      return;
    }
    const top = biased - 1023;
    let limb = (top - LIMB_BASE) >> 5;
    let offset = this.offsets[index]!;
    if (offset !== offset) {
      // First term: its top limb three below the window's top, room for the sum to grow 64 bits.
      offset = limb - (BANK_WINDOW - 3);
      this.offsets[index] = offset;
    }
    let j = limb - offset;
    if (j < 2 || j > BANK_WINDOW - 3) {
      j = this.shift(index, limb);
      if (j < 0) {
        this.addRare(index, x);
        return;
      }
    }
    const limbs = this.limbs;
    let at = index * BANK_WINDOW + j;
    let rest = x;
    for (;;) {
      if (limb * 32 + LIMB_BASE <= top - 52) {
        limbs[at]! += rest;
        break;
      }
      const magic = LIMB_MAGIC[limb]!;
      const piece = rest + magic - magic;
      limbs[at]! += piece;
      rest -= piece;
      if (rest === 0) break;
      limb--;
      at--;
    }
    if (++this.pending >= CARRY_EVERY) this.carry();
  }

  /** Adds every sum of another bank (same size) exactly. */
  merge(other: ExactSumBank): void {
    for (let index = 0; index < this.size; index++) {
      const base = index * BANK_WINDOW;
      for (let j = 0; j < BANK_WINDOW; j++) {
        const v = other.limbs[base + j]!;
        if (v !== 0) this.add(index, v);
      }
      const rare = other.rare[index];
      if (rare !== undefined) (this.rare[index] ??= new ExpansionSum()).addSum(rare);
    }
  }

  /** Sum `index` rounded to about 106 bits: hi = round(exact), lo = round(exact − hi). */
  pair(index: number): DoubleWord {
    const out = new ExpansionSum();
    const base = index * BANK_WINDOW;
    for (let j = 0; j < BANK_WINDOW; j++) if (this.limbs[base + j] !== 0) out.add(this.limbs[base + j]!);
    const rare = this.rare[index];
    if (rare !== undefined) out.addSum(rare);
    return out.pair();
  }

  private addRare(index: number, x: number): void {
    (this.rare[index] ??= new ExpansionSum()).add(x);
  }

  /** Writes the bank as it is: every limb, window offset and expansion, bit for bit (day-metrics.ts). */
  writeTo(out: StateWriter): void {
    out.u32(this.size);
    out.u32(this.pending);
    out.f64s(this.offsets);
    out.f64s(this.limbs);
    for (const rare of this.rare) {
      out.bool(rare !== undefined);
      rare?.writeTo(out);
    }
  }

  /** Reads what writeTo wrote, into a bank that must have the same size. */
  static readFrom(input: StateReader, size: number): ExactSumBank {
    const written = input.u32('exact-sum bank size');
    if (written !== size) throw new StateFormatError(`exact-sum bank of ${written} sums, expected ${size}`, input.offset - 4);
    const bank = new ExactSumBank(size);
    const pending = input.u32('exact-sum pending adds');
    if (pending >= CARRY_EVERY) throw new StateFormatError(`exact-sum pending adds ${pending}, expected < ${CARRY_EVERY}`, input.offset - 4);
    bank.pending = pending;
    bank.offsets.set(input.f64s(size, 'exact-sum offsets'));
    bank.limbs.set(input.f64s(size * BANK_WINDOW, 'exact-sum limbs'));
    for (let index = 0; index < size; index++) if (input.bool('exact-sum expansion flag')) bank.rare[index] = ExpansionSum.readFrom(input);
    return bank;
  }

  /**
   * Moves sum `index`'s window so that limbs limb − 2 … limb are in it with two limbs of headroom:
   * up by flushing its bottom limbs into the expansion, down only while its top limbs are empty.
   * Returns the new position of `limb`, or -1 when the window cannot move down.
   */
  private shift(index: number, limb: number): number {
    const limbs = this.limbs;
    const base = index * BANK_WINDOW;
    const offset = this.offsets[index]!;
    const wanted = limb - (BANK_WINDOW - 3);
    if (wanted > offset) {
      const by = Math.min(wanted - offset, BANK_WINDOW);
      for (let j = 0; j < by; j++) if (limbs[base + j] !== 0) this.addRare(index, limbs[base + j]!);
      limbs.copyWithin(base, base + by, base + BANK_WINDOW);
      limbs.fill(0, base + BANK_WINDOW - by, base + BANK_WINDOW);
      this.offsets[index] = wanted;
      return BANK_WINDOW - 3;
    }
    const by = offset - (limb - 2);
    if (by >= BANK_WINDOW) return -1;
    for (let j = BANK_WINDOW - by; j < BANK_WINDOW; j++) if (limbs[base + j] !== 0) return -1;
    limbs.copyWithin(base + by, base, base + BANK_WINDOW - by);
    limbs.fill(0, base, base + by);
    this.offsets[index] = offset - by;
    return 2;
  }

  /** Moves each limb's part above 2^32 units into the next limb; a full top limb goes to the expansion. */
  private carry(): void {
    this.pending = 0;
    const limbs = this.limbs;
    for (let index = 0; index < this.size; index++) {
      const offset = this.offsets[index]!;
      if (offset !== offset) continue;
      const base = index * BANK_WINDOW;
      for (let j = 0; j + 1 < BANK_WINDOW; j++) {
        const next = 2 ** ((offset + j + 1) * 32 + LIMB_BASE);
        const carried = Math.floor(limbs[base + j]! / next) * next;
        if (carried === 0) continue;
        limbs[base + j]! -= carried;
        limbs[base + j + 1]! += carried;
      }
      const topAt = base + BANK_WINDOW - 1;
      if (Math.abs(limbs[topAt]!) >= 2 ** ((offset + BANK_WINDOW - 1) * 32 + LIMB_BASE + 40)) {
        this.addRare(index, limbs[topAt]!);
        limbs[topAt] = 0;
      }
    }
  }
}

/** Limbs per sum of an ExactSumBank: 320 bits, e.g. Σe⁴ over errors of 1e-5 … 1e3 with its low parts. */
const BANK_WINDOW = 10;

/** Unit exponent of limb 0: limb i holds multiples of 2^(32i + LIMB_BASE). */
const LIMB_BASE = -1088;
/** Fast range of biased exponents: the rounding constant stays normal and the top limb finite. */
const FAST_MIN_BIASED = 32;
const FAST_MAX_BIASED = 1923;
/** Carry propagation interval: a limb gains < 2^33 units per add and stays exact below 2^53. */
const CARRY_EVERY = 2 ** 19;
/** Per limb: 1.5·2^(u + 52), which rounds a value to a multiple of 2^u (u = 32i + LIMB_BASE). */
const LIMB_MAGIC = Float64Array.from({ length: 70 }, (_, i) => {
  const e = i * 32 + LIMB_BASE + 52;
  return e >= -1022 && e <= 1023 ? 1.5 * 2 ** e : NaN;
});
const EXPONENT_VIEW = new Float64Array(1);
const EXPONENT_WORDS = new Uint32Array(EXPONENT_VIEW.buffer);

/** Non-overlapping doubles span at most 2098 bits of exponent range: no exact expansion is longer. */
const EXPANSION_MAX_PARTS = 2100;

/**
 * An exact sum of doubles as Shewchuk's non-overlapping expansion, as in Python's `math.fsum`
 * ("msum", Shewchuk 1997, "Adaptive precision floating-point arithmetic"), in a small Float64Array
 * that grows on demand; `pair` rounds it to hi + lo (hi = round(exact), lo = round(exact − hi), ties
 * to even). One TwoSum per component per add, and sums of terms over a wide range keep many
 * components (16 for Σe⁴ of ordinary errors), so ExactSum uses it only for rare terms and rounding.
 *
 * Non-finite terms (an overflowed e⁴, an infinite y²) and a finite sum that overflows are kept
 * apart in `special`: the result is then ±Infinity (NaN for +∞ and −∞ together), lo = 0.
 */
export class ExpansionSum {
  /** The expansion's components, increasing in magnitude and non-overlapping; `size` are in use. */
  private parts = new Float64Array(4);
  private size = 0;
  /** Sum of the non-finite terms (0 while there are none). */
  private special = 0;

  /** Adds one double exactly. */
  add(value: number): void {
    let x = value;
    if (x - x !== 0) {
      // ±Infinity or NaN: x − x is NaN only for those.
      this.special += x;
      return;
    }
    const parts = this.parts;
    const n = this.size;
    let kept = 0;
    for (let j = 0; j < n; j++) {
      let y = parts[j]!;
      if (Math.abs(x) < Math.abs(y)) {
        const t = x;
        x = y;
        y = t;
      }
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) parts[kept++] = lo;
      x = hi;
    }
    if (x - x !== 0) {
      // The finite sum left the double range: it is ±Infinity from now on.
      this.special += x;
      this.size = 0;
      return;
    }
    if (kept === parts.length) {
      const grown = new Float64Array(parts.length * 2);
      grown.set(parts);
      this.parts = grown;
    }
    this.parts[kept] = x;
    this.size = kept + 1;
  }

  /** Adds another expansion exactly. */
  addSum(other: ExpansionSum): void {
    for (let j = 0; j < other.size; j++) this.add(other.parts[j]!);
    if (other.special !== 0 || Number.isNaN(other.special)) this.special += other.special;
  }

  /** Writes the components and the non-finite part, bit for bit. */
  writeTo(out: StateWriter): void {
    out.u32(this.size);
    out.f64s(this.parts, this.size);
    out.f64(this.special);
  }

  /** Reads what writeTo wrote. */
  static readFrom(input: StateReader): ExpansionSum {
    const sum = new ExpansionSum();
    const size = input.count('expansion size', EXPANSION_MAX_PARTS);
    sum.parts = new Float64Array(Math.max(4, size));
    sum.parts.set(input.f64s(size, 'expansion parts'));
    sum.size = size;
    sum.special = input.f64('expansion special');
    return sum;
  }

  /** The exact sum correctly rounded to one double (round half to even). */
  get value(): number {
    if (this.special !== 0 || Number.isNaN(this.special)) return this.special;
    return roundExpansion(this.parts, this.size);
  }

  /** The exact sum rounded to about 106 bits: hi = round(exact), lo = round(exact − hi). */
  pair(): DoubleWord {
    const hi = this.value;
    if (!Number.isFinite(hi)) return { hi, lo: 0 };
    const rest = new ExpansionSum();
    for (let j = 0; j < this.size; j++) rest.add(this.parts[j]!);
    rest.add(-hi);
    return { hi, lo: rest.value };
  }
}

/**
 * The correctly rounded value of a non-overlapping expansion (increasing magnitude): CPython's
 * `math_fsum` final step, summing from the top until a rounding occurs, then correcting a
 * half-way case by the sign of the next component.
 */
function roundExpansion(parts: Float64Array, size: number): number {
  if (size === 0) return 0;
  let n = size - 1;
  let hi = parts[n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    n--;
    const y = parts[n]!;
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  if (n > 0 && ((lo < 0 && parts[n - 1]! < 0) || (lo > 0 && parts[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    const yr = x - hi;
    if (y === yr) hi = x;
  }
  return hi;
}

/** The rounding error of p = fl(x²), so that x² = p + error exactly; 0 when p overflowed (SPEC §5.1 per-record terms). */
export function squareRoundingError(x: number, p: number): number {
  return Number.isFinite(p) ? squareError(x, p) : 0;
}
