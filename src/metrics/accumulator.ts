/**
 * The per-slice (or per-combo) accumulator of SPEC §5 and §5.1: counts, data-quality counters, the
 * seven sufficient sums held exactly (ExactSumBank), the largest delay and, where the caller keeps them
 * here, the delay histogram. Everything in it is order-independent: integer counts, exact sums, a
 * maximum and integer bin counts, so two accumulators that saw the same records in any order, or
 * as any tree of merges, finish to the same bits.
 *
 * A kept prediction enters as `addPrediction` (kept, count, misplaced, an invalid prediction) plus
 * its label state (`addLabelState`: invalid labels, duplicate labels, and the labeled terms). Label
 * states may also be removed (sign −1), which the label-age buckets of maturity.ts rely on; sums
 * stay exact under removal.
 */
import { DelayHistogram, delayKey } from './delay-histogram.js';
import { type DoubleWord, ExactSumBank, squareRoundingError } from './compensated.js';
import { SUM_FIELDS, metricsFromSums, type MetricValues } from './formulas.js';
import type { StateReader, StateWriter } from './state-codec.js';

// Indexes of the sums in the bank, in SUM_FIELDS order.
const SUM_ERROR = 0;
const SUM_SQ_ERROR = 1;
const SUM_ABS_ERROR = 2;
const SUM_QUAD_ERROR = 3;
const SUM_APE = 4;
const SUM_Y_TRUE = 5;
const SUM_SQ_Y_TRUE = 6;

/** Everything needed to produce one slice's ModelMetrics numbers; merges exactly with another. */
export class MetricAccumulator {
  /** Kept predictions, invalid ones included: whether a slice (or slice-hour) exists at all. */
  kept = 0;
  /** Valid predictions in the slice. */
  count = 0;
  /** Of them, with a usable label. */
  labeledCount = 0;
  /** Labeled records with y_true ≠ 0, the MAPE denominator. */
  mapeCount = 0;
  /** Invalid predictions and non-finite usable labels (SPEC §3). */
  invalidCount = 0;
  /** Dropped predictions that repeated a kept prediction_id. */
  duplicatePredictionCount = 0;
  /** Usable labels that lost to a later one. */
  duplicateLabelCount = 0;
  /** Labels used with label_ts < inference_ts (delay counted as 0). */
  negativeDelayCount = 0;
  /** Predictions whose inference_ts lies outside their dt partition's day. */
  misplacedCount = 0;

  /**
   * The seven sums of SUM_FIELDS, exact, in one bank: Σe (e = y_true − y_pred); Σe², each square as
   * the two terms p + q of TwoProduct; Σ|e|; Σe⁴, each as the double-word terms p² + (error of p² +
   * 2p·q); Σ|e / y_true| over y_true ≠ 0; Σy_true; Σy_true² as Σe².
   */
  private sums = new ExactSumBank(SUM_FIELDS.length);

  /** The largest delay added (removals never lower it: maturity.ts only removes smaller-or-equal delays). */
  maxDelaySeconds = 0;
  /** Delays, where they are kept in the accumulator itself (slices); combos keep theirs as rows. */
  delays: DelayHistogram | undefined;

  /** Counts one kept prediction: valid or not, misplaced or not. Its label state comes separately. */
  addPrediction(valid: boolean, misplaced: boolean): void {
    this.kept++;
    if (valid) this.count++;
    else this.invalidCount++;
    if (misplaced) this.misplacedCount++;
  }

  /** Counts one valid prediction without a usable label (a shorthand of addPrediction). */
  addUnlabeled(): void {
    this.addPrediction(true, false);
  }

  /** Adds one valid prediction with a usable label, its delay kept here (negative delays count as 0). */
  addLabeled(yTrue: number, yPred: number, delaySeconds: number): void {
    this.addPrediction(true, false);
    const delay = delaySeconds > 0 ? delaySeconds : 0;
    this.addLabelState(1, 0, 0, true, yTrue, yPred, delay, false, delayKey(delay));
  }

  /**
   * Adds (sign 1) or removes (sign −1) one prediction's label state: its invalid and losing labels,
   * and when `labeled` its winning label's terms (error = yTrue − yPred, both finite). `delayKey`
   * (delay-histogram.ts) goes into `delays` when given (not undefined).
   */
  addLabelState(sign: number, invalidLabels: number, duplicateLabels: number, labeled: boolean, yTrue: number, yPred: number, delaySeconds: number, negativeDelay: boolean, delayKey?: number): void {
    this.invalidCount += sign * invalidLabels;
    this.duplicateLabelCount += sign * duplicateLabels;
    if (!labeled) return;
    this.labeledCount += sign;
    if (negativeDelay) this.negativeDelayCount += sign;
    this.addTerms(sign, yTrue, yPred);
    if (sign > 0 && delaySeconds > this.maxDelaySeconds) this.maxDelaySeconds = delaySeconds;
    if (delayKey !== undefined) (this.delays ??= new DelayHistogram()).addKey(delayKey, sign);
  }

  /** The per-record terms of SPEC §5.1, computed the same way for every record and every caller. */
  private addTerms(sign: number, yTrue: number, yPred: number): void {
    const error = yTrue - yPred;
    const absError = Math.abs(error);
    const e2 = error * error;
    const e2Low = squareRoundingError(error, e2);
    const e4 = e2 * e2;
    const e4Low = Number.isFinite(e4) ? squareRoundingError(e2, e4) + 2 * e2 * e2Low : 0;
    const y2 = yTrue * yTrue;
    const y2Low = squareRoundingError(yTrue, y2);
    const sums = this.sums;
    // Negation is exact, so a removal (sign −1) adds the same terms negated.
    sums.add(SUM_ERROR, sign * error);
    sums.add(SUM_SQ_ERROR, sign * e2);
    sums.add(SUM_SQ_ERROR, sign * e2Low);
    sums.add(SUM_ABS_ERROR, sign * absError);
    sums.add(SUM_QUAD_ERROR, sign * e4);
    sums.add(SUM_QUAD_ERROR, sign * e4Low);
    sums.add(SUM_Y_TRUE, sign * yTrue);
    sums.add(SUM_SQ_Y_TRUE, sign * y2);
    sums.add(SUM_SQ_Y_TRUE, sign * y2Low);
    if (yTrue !== 0) {
      this.mapeCount += sign;
      sums.add(SUM_APE, sign * (absError / Math.abs(yTrue)));
    }
  }

  /** One sufficient statistic as its pair hi + lo (SPEC §5.1). */
  pairOf(field: (typeof SUM_FIELDS)[number]): DoubleWord {
    return this.sums.pair(SUM_FIELDS.indexOf(field));
  }

  /** Adds another accumulator's records: counts and sums exactly, the histogram bin by bin. */
  merge(other: MetricAccumulator): void {
    this.kept += other.kept;
    this.count += other.count;
    this.labeledCount += other.labeledCount;
    this.mapeCount += other.mapeCount;
    this.invalidCount += other.invalidCount;
    this.duplicatePredictionCount += other.duplicatePredictionCount;
    this.duplicateLabelCount += other.duplicateLabelCount;
    this.negativeDelayCount += other.negativeDelayCount;
    this.misplacedCount += other.misplacedCount;
    this.sums.merge(other.sums);
    if (other.maxDelaySeconds > this.maxDelaySeconds) this.maxDelaySeconds = other.maxDelaySeconds;
    if (other.delays !== undefined) (this.delays ??= new DelayHistogram()).merge(other.delays);
  }

  /** Writes every count, the exact sums limb for limb, the largest delay and the histogram (day-metrics.ts). */
  writeTo(out: StateWriter): void {
    out.f64s([this.kept, this.count, this.labeledCount, this.mapeCount, this.invalidCount, this.duplicatePredictionCount, this.duplicateLabelCount, this.negativeDelayCount, this.misplacedCount, this.maxDelaySeconds]);
    this.sums.writeTo(out);
    out.bool(this.delays !== undefined);
    this.delays?.writeTo(out);
  }

  /** Reads what writeTo wrote. */
  static readFrom(input: StateReader): MetricAccumulator {
    const acc = new MetricAccumulator();
    [acc.kept, acc.count, acc.labeledCount, acc.mapeCount, acc.invalidCount, acc.duplicatePredictionCount, acc.duplicateLabelCount, acc.negativeDelayCount, acc.misplacedCount, acc.maxDelaySeconds] = Array.from(input.f64s(10, 'accumulator counts'));
    acc.sums = ExactSumBank.readFrom(input, SUM_FIELDS.length);
    if (input.bool('delay histogram flag')) acc.delays = DelayHistogram.readFrom(input);
    return acc;
  }

  /** The slice's numeric ModelMetrics fields (SPEC §5, §5.1); does not change the accumulator. */
  finish(): MetricValues {
    const pairs = {
      sum_error: this.sums.pair(SUM_ERROR),
      sum_sq_error: this.sums.pair(SUM_SQ_ERROR),
      sum_abs_error: this.sums.pair(SUM_ABS_ERROR),
      sum_quad_error: this.sums.pair(SUM_QUAD_ERROR),
      sum_ape: this.sums.pair(SUM_APE),
      sum_y_true: this.sums.pair(SUM_Y_TRUE),
      sum_sq_y_true: this.sums.pair(SUM_SQ_Y_TRUE),
    };
    const labeled = this.labeledCount > 0;
    return {
      count: this.count,
      labeled_count: this.labeledCount,
      mape_count: this.mapeCount,
      ...metricsFromSums({ count: this.count, labeled_count: this.labeledCount, mape_count: this.mapeCount, ...pairs }),
      label_delay_p50_s: labeled ? (this.delays?.quantile(0.5) ?? null) : null,
      label_delay_p95_s: labeled ? (this.delays?.quantile(0.95) ?? null) : null,
      label_delay_max_s: labeled ? this.maxDelaySeconds : null,
      invalid_count: this.invalidCount,
      duplicate_prediction_count: this.duplicatePredictionCount,
      duplicate_label_count: this.duplicateLabelCount,
      negative_delay_count: this.negativeDelayCount,
      misplaced_count: this.misplacedCount,
      sum_error: pairs.sum_error.hi,
      sum_error_lo: pairs.sum_error.lo,
      sum_sq_error: pairs.sum_sq_error.hi,
      sum_sq_error_lo: pairs.sum_sq_error.lo,
      sum_abs_error: pairs.sum_abs_error.hi,
      sum_abs_error_lo: pairs.sum_abs_error.lo,
      sum_quad_error: pairs.sum_quad_error.hi,
      sum_quad_error_lo: pairs.sum_quad_error.lo,
      sum_ape: pairs.sum_ape.hi,
      sum_ape_lo: pairs.sum_ape.lo,
      sum_y_true: pairs.sum_y_true.hi,
      sum_y_true_lo: pairs.sum_y_true.lo,
      sum_sq_y_true: pairs.sum_sq_y_true.hi,
      sum_sq_y_true_lo: pairs.sum_sq_y_true.lo,
    };
  }
}
