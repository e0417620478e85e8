/**
 * The per-slice accumulator of SPEC §5: counts, data-quality counters, the seven sufficient sums in
 * double words, and a label-delay quantile sketch. `addLabeled` runs several times per joined record
 * (the whole-version slice plus one slice per segment key), so it allocates nothing.
 */
import { DDSketch } from '@datadog/sketches-js';
import { CompensatedSum } from './compensated.js';
import { metricsFromSums, type MetricValues } from './formulas.js';

/**
 * Relative accuracy of the delay sketch: each reported quantile lies within 0.5% of a value of the
 * requested rank, inside the 1% SPEC §5 allows. Bins are log-spaced (γ ≈ 1.01), so delays from 1 s to
 * 7 days take about 1,350 bins, 11 KB, and only slices with labels have a sketch.
 */
export const DELAY_SKETCH_ACCURACY = 0.005;

/** Everything needed to produce one slice's ModelMetrics numbers; merges exactly with another. */
export class MetricAccumulator {
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
  readonly sumError = new CompensatedSum();
  /** Σe², each square added exactly. */
  readonly sumSqError = new CompensatedSum();
  /** Σ|e|. */
  readonly sumAbsError = new CompensatedSum();
  /** Σe⁴, each fourth power added to double-word precision. */
  readonly sumQuadError = new CompensatedSum();
  /** Σ|e / y_true| over y_true ≠ 0. */
  readonly sumApe = new CompensatedSum();
  /** Σy_true. */
  readonly sumYTrue = new CompensatedSum();
  /** Σy_true², each square added exactly. */
  readonly sumSqYTrue = new CompensatedSum();

  /** Created on the first labeled record: most segment slices of a young model have none. */
  private delaySketch: DDSketch | undefined;
  /** The exact largest delay (the sketch would round it by up to 0.5%). */
  private maxDelaySeconds = 0;

  /** Counts one valid prediction without a usable label. */
  addUnlabeled(): void {
    this.count++;
  }

  /**
   * Adds one valid prediction with a usable label; error = yTrue − yPred. Both values must be finite
   * (SPEC §3 routes the rest to invalid_count). A negative delay is taken as 0, as SPEC §3 prescribes;
   * counting it in negativeDelayCount stays with the caller, which knows the timestamps.
   */
  addLabeled(yTrue: number, yPred: number, delaySeconds: number): void {
    this.count++;
    this.labeledCount++;
    const error = yTrue - yPred;
    const absError = Math.abs(error);
    this.sumError.add(error);
    this.sumSqError.addSquare(error);
    this.sumAbsError.add(absError);
    this.sumQuadError.addFourthPower(error);
    this.sumYTrue.add(yTrue);
    this.sumSqYTrue.addSquare(yTrue);
    if (yTrue !== 0) {
      this.mapeCount++;
      this.sumApe.add(absError / Math.abs(yTrue));
    }
    const delay = delaySeconds > 0 ? delaySeconds : 0;
    if (delay > this.maxDelaySeconds) this.maxDelaySeconds = delay;
    (this.delaySketch ??= new DDSketch({ relativeAccuracy: DELAY_SKETCH_ACCURACY })).accept(delay);
  }

  /** Adds another accumulator's records: counts and sums exactly, the sketch bin by bin. */
  merge(other: MetricAccumulator): void {
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
    const theirs = other.delaySketch;
    if (theirs === undefined || theirs.count === 0) return;
    const ours = (this.delaySketch ??= new DDSketch({ relativeAccuracy: DELAY_SKETCH_ACCURACY }));
    mergeDelaySketch(ours, theirs);
  }

  /** The slice's numeric ModelMetrics fields (SPEC §5). */
  finish(): MetricValues {
    const sketch = this.delaySketch;
    const hasDelays = this.labeledCount > 0 && sketch !== undefined;
    return {
      count: this.count,
      labeled_count: this.labeledCount,
      mape_count: this.mapeCount,
      ...metricsFromSums({
        count: this.count,
        labeled_count: this.labeledCount,
        mape_count: this.mapeCount,
        sum_error: this.sumError,
        sum_sq_error: this.sumSqError,
        sum_abs_error: this.sumAbsError,
        sum_quad_error: this.sumQuadError,
        sum_ape: this.sumApe,
        sum_y_true: this.sumYTrue,
        sum_sq_y_true: this.sumSqYTrue,
      }),
      label_delay_p50_s: hasDelays ? sketch.getValueAtQuantile(0.5) : null,
      label_delay_p95_s: hasDelays ? sketch.getValueAtQuantile(0.95) : null,
      label_delay_max_s: hasDelays ? this.maxDelaySeconds : null,
      invalid_count: this.invalidCount,
      duplicate_prediction_count: this.duplicatePredictionCount,
      duplicate_label_count: this.duplicateLabelCount,
      negative_delay_count: this.negativeDelayCount,
      misplaced_count: this.misplacedCount,
      sum_error: this.sumError.value,
      sum_sq_error: this.sumSqError.value,
      sum_abs_error: this.sumAbsError.value,
      sum_quad_error: this.sumQuadError.value,
      sum_ape: this.sumApe.value,
      sum_y_true: this.sumYTrue.value,
      sum_sq_y_true: this.sumSqYTrue.value,
    };
  }
}

/**
 * Adds `from`'s bins into `into` one key at a time. DDSketch.merge of @datadog/sketches-js 2.1.1 is not
 * used: DenseStore.merge calls `_extendRange(minKey, maxKey)`, whose `secondKey || key` drops a maxKey
 * of 0 (delays of ~1 s), so merging {0.5 s, 1 s} into a sketch holding only 1 µs writes past the bins
 * and p95 comes out as 0.5 s. DenseStore.add extends its range one key at a time and has no such flaw.
 * Delays are never negative, so the negative store stays empty and is not merged.
 */
function mergeDelaySketch(into: DDSketch, from: DDSketch): void {
  const store = from.store;
  for (let i = 0; i < store.bins.length; i++) {
    const weight = store.bins[i]!;
    if (weight > 0) into.store.add(i + store.offset, weight);
  }
  into.zeroCount += from.zeroCount;
  into.count += from.count;
  into.sum += from.sum;
  if (from.min < into.min) into.min = from.min;
  if (from.max > into.max) into.max = from.max;
}
