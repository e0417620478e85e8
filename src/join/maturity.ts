/**
 * The label maturity of one kept prediction (SPEC §5.1): its label state at each label age of the
 * run, in the same pass as the join. A run writes, per slice, a record for each age A_0 < … < A_{K−1}
 * (with end of D + A at or before its labels-through) and its ordinary record; a prediction's cutoff
 * at age k is c_k = min(own cutoff, end of D + A_k), and c_K = own cutoff for the ordinary record.
 *
 * Cutoffs only grow with k, so the state (winning label, invalid and losing labels) changes at a few
 * ages at most. Instead of adding each prediction to K + 1 accumulators, it is added once to the
 * *bucket* of the first age whose state it is, and a later change adds the new state and removes the
 * old one in the bucket where it happens: the record of age k is then the exact merge of buckets
 * 0 … k, and the ordinary record the merge of all. Sums are exact (ExactSum) and counts integers, so
 * removal leaves no trace and an age record is bit-identical to a direct computation at that cutoff
 * (a preliminary run with --as-of = end of D + A, where that is at or before every own cutoff).
 *
 * The largest delay needs no removal: the winner's label_ts never decreases as the cutoff grows
 * (latest usable label wins; a dataset label beating the inline one has delay ≥ 0), so a removed
 * state's delay is at most its replacement's, in a bucket no later.
 *
 * Fast path: a prediction with at most one label candidate (one dataset label, or only an inline
 * y_true) changes state once, at the first age whose end reaches the label: one call, no re-choice.
 */
import { chooseLabel, newLabelChoice } from './policy.js';
import type { LabelChains } from './label-index.js';

/** Where a kept prediction's figures go. */
export interface ContributionSink {
  /** The prediction itself, in bucket 0 and its hour (-1: misplaced, the day only). */
  prediction(valid: boolean, misplaced: boolean, hour: number): void;
  /**
   * A label state entering (sign 1) or leaving (sign −1) the day's records from age bucket `bucket`
   * on. `final`: the state the run's own cutoff ends in, so it also goes into the prediction's hour.
   */
  state(bucket: number, sign: number, final: boolean, invalidLabels: number, duplicateLabels: number, labeled: boolean, yTrue: number, yPred: number, delaySeconds: number, negativeDelay: boolean): void;
}

/** Winner code of a state: a label index, or one of these. */
const NO_LABEL = -1;
const INLINE_LABEL = -2;

/** The per-prediction maturity rule of a run: its label index and the ends of its label ages. */
export class LabelMaturity {
  /** end of D + A_k per written age, ascending (microseconds). */
  private readonly ageEnds: Float64Array;
  private readonly choice = newLabelChoice();
  // Scratch per bucket (K + 1 entries), reused for every prediction of the general path.
  private readonly winners: Float64Array;
  private readonly invalids: Int32Array;
  private readonly losers: Int32Array;

  constructor(
    private readonly labels: LabelChains,
    ageEndsMicros: readonly number[],
  ) {
    this.ageEnds = Float64Array.from(ageEndsMicros);
    this.winners = new Float64Array(ageEndsMicros.length + 1);
    this.invalids = new Int32Array(ageEndsMicros.length + 1);
    this.losers = new Int32Array(ageEndsMicros.length + 1);
  }

  /** Age buckets: one per written age, plus the run's own cutoff. */
  get bucketCount(): number {
    return this.ageEnds.length + 1;
  }

  /** The first bucket whose cutoff reaches `ts` (given ts <= own cutoff): the first age end ≥ ts, else the last bucket. */
  private firstBucket(ts: number): number {
    const ends = this.ageEnds;
    let b = 0;
    while (b < ends.length && ends[b]! < ts) b++;
    return b;
  }

  /**
   * Sends one kept prediction's figures to `sink`: the prediction, then its label states by age
   * bucket. `inlineYTrue` is the prediction's own y_true (null when absent), `head` its label chain
   * (in the LabelChains, -1 for none), `cutoff` its own cutoff (SPEC §3). Same rules as DayJoin.accept.
   */
  contribute(sink: ContributionSink, hour: number, misplaced: boolean, inferenceTs: number, yPred: number, inlineYTrue: number | null, head: number, cutoff: number): void {
    const valid = Number.isFinite(yPred);
    sink.prediction(valid, misplaced, hour);
    const hasInline = inlineYTrue !== null;
    if (head < 0 && !hasInline) return;
    const labels = this.labels;
    if (head < 0 || (!hasInline && labels.next(head) < 0)) {
      // One candidate: usable from the first bucket that reaches its label_ts, if the own cutoff does.
      const ts = head < 0 ? inferenceTs : labels.labelTs(head);
      if (!(ts <= cutoff)) return;
      const y = head < 0 ? (inlineYTrue as number) : labels.yTrue(head);
      const bucket = this.firstBucket(ts);
      if (!Number.isFinite(y)) sink.state(bucket, 1, true, 1, 0, false, NaN, yPred, NaN, false);
      else if (valid) {
        const delay = ts > inferenceTs ? (ts - inferenceTs) / 1e6 : 0;
        sink.state(bucket, 1, true, 0, 0, true, y, yPred, delay, ts < inferenceTs);
      }
      return;
    }
    this.general(sink, valid, inferenceTs, yPred, inlineYTrue, head, cutoff);
  }

  /** Several candidates: the state at every bucket's cutoff, then one entry and removal per change. */
  private general(sink: ContributionSink, valid: boolean, inferenceTs: number, yPred: number, inlineYTrue: number | null, head: number, cutoff: number): void {
    const { winners, invalids, losers, ageEnds, labels } = this;
    const buckets = ageEnds.length + 1;
    let previousCutoff = NaN;
    for (let b = 0; b < buckets; b++) {
      const c = b < ageEnds.length && ageEnds[b]! < cutoff ? ageEnds[b]! : cutoff;
      if (c === previousCutoff) {
        winners[b] = winners[b - 1]!;
        invalids[b] = invalids[b - 1]!;
        losers[b] = losers[b - 1]!;
        continue;
      }
      previousCutoff = c;
      let winner = NO_LABEL;
      let invalid = 0;
      let lost = 0;
      if (head >= 0) {
        const choice = chooseLabel(labels, head, c, this.choice);
        invalid = choice.invalidCount;
        if (choice.winner >= 0) {
          winner = choice.winner;
          lost = choice.usableCount - 1;
        }
      }
      // An inline y_true is a label with label_ts = inference_ts; a dataset label wins over it.
      if (inlineYTrue !== null && inferenceTs <= c) {
        if (!Number.isFinite(inlineYTrue)) invalid++;
        else if (winner === NO_LABEL) winner = INLINE_LABEL;
      }
      if (!valid) {
        // An invalid prediction joins no label (SPEC §3), but its labels are still the labels feed's:
        // the non-finite ones count in invalid_count and, of several usable ones, the losers in
        // duplicate_label_count, exactly as for a valid prediction (data quality, SPEC §5).
        winner = NO_LABEL;
      }
      winners[b] = winner;
      invalids[b] = invalid;
      losers[b] = lost;
    }
    let last = -1;
    for (let b = 0; b < buckets; b++) {
      const changed = b === 0 ? winners[0] !== NO_LABEL || invalids[0] !== 0 || losers[0] !== 0 : winners[b] !== winners[b - 1] || invalids[b] !== invalids[b - 1] || losers[b] !== losers[b - 1];
      if (changed) last = b;
    }
    if (last < 0) return;
    for (let b = 0; b <= last; b++) {
      const changed = b === 0 ? winners[0] !== NO_LABEL || invalids[0] !== 0 || losers[0] !== 0 : winners[b] !== winners[b - 1] || invalids[b] !== invalids[b - 1] || losers[b] !== losers[b - 1];
      if (!changed) continue;
      if (b > 0) this.emit(sink, b, -1, false, winners[b - 1]!, invalids[b - 1]!, losers[b - 1]!, inferenceTs, yPred, inlineYTrue);
      this.emit(sink, b, 1, b === last, winners[b]!, invalids[b]!, losers[b]!, inferenceTs, yPred, inlineYTrue);
    }
  }

  private emit(sink: ContributionSink, bucket: number, sign: number, final: boolean, winner: number, invalid: number, lost: number, inferenceTs: number, yPred: number, inlineYTrue: number | null): void {
    if (winner === NO_LABEL) {
      // The empty state (nothing usable, nothing invalid) contributes nothing.
      if (invalid !== 0 || lost !== 0) sink.state(bucket, sign, final, invalid, lost, false, NaN, yPred, NaN, false);
      return;
    }
    if (winner === INLINE_LABEL) {
      sink.state(bucket, sign, final, invalid, lost, true, inlineYTrue as number, yPred, 0, false);
      return;
    }
    const ts = this.labels.labelTs(winner);
    const delay = ts > inferenceTs ? (ts - inferenceTs) / 1e6 : 0;
    sink.state(bucket, sign, final, invalid, lost, true, this.labels.yTrue(winner), yPred, delay, ts < inferenceTs);
  }
}
