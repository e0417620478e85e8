/**
 * The label-delay quantile sketch of SPEC §5: a log-bucket histogram in the style of DDSketch
 * (Masson, Rim & Lee, VLDB 2019) with integer counts, so that a histogram is a pure function of the
 * multiset of delays added: any order, any merge tree and added-then-removed entries (the label-age
 * deltas of maturity.ts) give the same bins and hence bit-identical quantiles (SPEC §5.1).
 *
 * A positive delay d falls in bin k = ceil(log_γ d), γ = (1 + α)/(1 − α); a quantile reports the bin's
 * representative 2γ^k/(γ + 1), within α of every value of the bin. Zero delays (inline labels,
 * negative delays) have their own count. Bins are a dense Int32Array over the keys seen, grown on
 * demand: 1 µs … 10 days is ~2,300 keys, 9 KiB; histograms exist per slice and window at the end of a
 * day, not per record.
 */
import type { StateReader, StateWriter } from './state-codec.js';


/** Relative accuracy α: each quantile lies within 0.5% of a delay of the requested rank (SPEC §5 allows 1%). */
export const DELAY_ACCURACY = 0.005;
const GAMMA = (1 + DELAY_ACCURACY) / (1 - DELAY_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** Keys are stored in 16 bits by the join (maturity.ts): |key| < 2^15 covers 1e-71 … 1e71 seconds. */
export const DELAY_KEY_LIMIT = 32_000;
/** The key code of a zero delay (outside the key range). */
export const ZERO_DELAY_KEY = -32_768;

/** The bin key of a delay in seconds (ZERO_DELAY_KEY for d <= 0). */
export function delayKey(delaySeconds: number): number {
  if (!(delaySeconds > 0)) return ZERO_DELAY_KEY;
  const key = Math.ceil(Math.log(delaySeconds) / LOG_GAMMA);
  return key > DELAY_KEY_LIMIT ? DELAY_KEY_LIMIT : key < -DELAY_KEY_LIMIT ? -DELAY_KEY_LIMIT : key;
}

/** The value a bin reports: its representative, within α of every delay in it. */
export function delayOfKey(key: number): number {
  return key === ZERO_DELAY_KEY ? 0 : (2 * Math.pow(GAMMA, key)) / (GAMMA + 1);
}

/** Counts of delays by bin; weights may be negative (a removed entry), totals never are. */
export class DelayHistogram {
  private bins = new Int32Array(0);
  private offset = 0;
  private zeros = 0;
  /** Total weight. */
  count = 0;

  /** Adds `weight` (±1, or a merged count) to the bin of `key`. */
  addKey(key: number, weight: number): void {
    this.count += weight;
    if (key === ZERO_DELAY_KEY) {
      this.zeros += weight;
      return;
    }
    let index = key - this.offset;
    if (index < 0 || index >= this.bins.length) index = this.extend(key);
    this.bins[index]! += weight;
  }

  /** Adds another histogram bin by bin. */
  merge(other: DelayHistogram): void {
    this.count += other.count;
    this.zeros += other.zeros;
    const bins = other.bins;
    for (let i = 0; i < bins.length; i++) {
      const weight = bins[i]!;
      if (weight === 0) continue;
      const key = i + other.offset;
      let index = key - this.offset;
      if (index < 0 || index >= this.bins.length) index = this.extend(key);
      this.bins[index]! += weight;
    }
  }

  /**
   * The delay at quantile q: the bin holding the entry of rank q·(count − 1) (DDSketch's rank rule),
   * or null when empty.
   */
  quantile(q: number): number | null {
    if (this.count <= 0) return null;
    const rank = q * (this.count - 1);
    let seen = this.zeros;
    if (seen > rank) return 0;
    const bins = this.bins;
    for (let i = 0; i < bins.length; i++) {
      seen += bins[i]!;
      if (seen > rank) return delayOfKey(i + this.offset);
    }
    return delayOfKey(bins.length - 1 + this.offset);
  }

  /** Writes the bins as they are (offset, zero count, total, dense bins). */
  writeTo(out: StateWriter): void {
    out.i32(this.offset);
    out.f64(this.zeros);
    out.f64(this.count);
    out.u32(this.bins.length);
    out.i32s(this.bins);
  }

  /** Reads what writeTo wrote. */
  static readFrom(input: StateReader): DelayHistogram {
    const histogram = new DelayHistogram();
    histogram.offset = input.i32('delay histogram offset');
    histogram.zeros = input.f64('delay histogram zeros');
    histogram.count = input.f64('delay histogram count');
    // Keys lie within ±DELAY_KEY_LIMIT, plus the slack of extend().
    histogram.bins = input.i32s(input.count('delay histogram bins', 4 * DELAY_KEY_LIMIT), 'delay histogram bins');
    return histogram;
  }

  /** Grows the dense range to hold `key` (with some slack); returns its index. */
  private extend(key: number): number {
    const old = this.bins;
    if (old.length === 0) {
      this.bins = new Int32Array(64);
      this.offset = key - 32;
      return key - this.offset;
    }
    const low = Math.min(this.offset, key);
    const high = Math.max(this.offset + old.length - 1, key);
    const span = high - low + 1;
    const slack = Math.max(16, span >> 2);
    const newOffset = key < this.offset ? low - slack : low;
    const grown = new Int32Array(span + slack);
    grown.set(old, this.offset - newOffset);
    this.bins = grown;
    this.offset = newOffset;
    return key - newOffset;
  }
}
