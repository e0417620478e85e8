/**
 * The per-slice (or per-combo) accumulator of SPEC §5 and §5.1: counts, data-quality counters, the
 * seven sufficient sums held exactly (ExactSum), the largest delay and, where the caller keeps them
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
import { ExactSum, squareRoundingError } from './compensated.js';
import { metricsFromSums, type MetricValues } from './formulas.js';

export { DELAY_ACCURACY as DELAY_SKETCH_ACCURACY } from './delay-histogram.js';

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

  /** Σe with e = y_true − y_pred. */
  readonly sumError = new ExactSum();
  /** Σe², each square added exactly as the two terms p + q of TwoProduct. */
  readonly sumSqError = new ExactSum();
  /** Σ|e|. */
  readonly sumAbsError = new ExactSum();
  /** Σe⁴, each fourth power as the double-word terms p² + (error of p² + 2p·q). */
  readonly sumQuadError = new ExactSum();
  /** Σ|e / y_true| over y_true ≠ 0. */
  readonly sumApe = new ExactSum();
  /** Σy_true. */
  readonly sumYTrue = new ExactSum();
  /** Σy_true², as sumSqError. */
  readonly sumSqYTrue = new ExactSum();

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
    if (sign > 0) {
      this.sumError.add(error);
      this.sumSqError.add(e2);
      this.sumSqError.add(e2Low);
      this.sumAbsError.add(absError);
      this.sumQuadError.add(e4);
      this.sumQuadError.add(e4Low);
      this.sumYTrue.add(yTrue);
      this.sumSqYTrue.add(y2);
      this.sumSqYTrue.add(y2Low);
    } else {
      this.sumError.add(-error);
      this.sumSqError.add(-e2);
      this.sumSqError.add(-e2Low);
      this.sumAbsError.add(-absError);
      this.sumQuadError.add(-e4);
      this.sumQuadError.add(-e4Low);
      this.sumYTrue.add(-yTrue);
      this.sumSqYTrue.add(-y2);
      this.sumSqYTrue.add(-y2Low);
    }
    if (yTrue !== 0) {
      this.mapeCount += sign;
      this.sumApe.add(sign * (absError / Math.abs(yTrue)));
    }
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
    this.sumError.addSum(other.sumError);
    this.sumSqError.addSum(other.sumSqError);
    this.sumAbsError.addSum(other.sumAbsError);
    this.sumQuadError.addSum(other.sumQuadError);
    this.sumApe.addSum(other.sumApe);
    this.sumYTrue.addSum(other.sumYTrue);
    this.sumSqYTrue.addSum(other.sumSqYTrue);
    if (other.maxDelaySeconds > this.maxDelaySeconds) this.maxDelaySeconds = other.maxDelaySeconds;
    if (other.delays !== undefined) (this.delays ??= new DelayHistogram()).merge(other.delays);
  }

  /** The slice's numeric ModelMetrics fields (SPEC §5, §5.1); does not change the accumulator. */
  finish(): MetricValues {
    const pairs = {
      sum_error: this.sumError.pair(),
      sum_sq_error: this.sumSqError.pair(),
      sum_abs_error: this.sumAbsError.pair(),
      sum_quad_error: this.sumQuadError.pair(),
      sum_ape: this.sumApe.pair(),
      sum_y_true: this.sumYTrue.pair(),
      sum_sq_y_true: this.sumSqYTrue.pair(),
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
