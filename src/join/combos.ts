/**
 * The metric side of a day's join (SPEC §5, §5.1): each kept prediction is accumulated at once into
 * its *combo* — the predictions of one model version with the same value for every segment key —
 * per label-age bucket of the day (maturity.ts) and per hour of D; combos are merged into slices
 * once the day is complete (slices.ts), when the top values of each key are known.
 *
 * Delays do not go into per-combo histograms (a combo-hour histogram per combo would cost MiBs per
 * model version): each labeled state is counted per combo under its packed code (bucket, sign, hour
 * and delay bin), one map entry per distinct code, turned into slice histograms at the end.
 *
 * Past `maxCombos` distinct combos (a high-cardinality key), predictions are kept as compact rows of
 * their join scalars instead (about 60 bytes plus 8 per segment value) and replayed through the same
 * maturity rule into the slices at the end, so memory stays bounded whatever the cardinality.
 */
import { MetricAccumulator } from '../metrics/accumulator.js';
import { DelayHistogram, delayKey } from '../metrics/delay-histogram.js';
import { float64Column, uint32Column, uint8Column } from './columns.js';
import { KeyCounts } from './key-counts.js';
import type { LabelChains } from './label-index.js';
import { StateFormatError, type StateReader, type StateWriter } from '../metrics/state-codec.js';
import { type ContributionSink, LabelMaturity } from './maturity.js';
import type { DayWindow } from './policy.js';
import { HOURS_PER_DAY, ageEndMicros, hourOfDay } from './windows.js';

/**
 * Most combos. Each holds up to (ages + 1) + 24 accumulators of ~1 KiB (no histograms), so this
 * bounds combos to ~60 MiB in the worst case; typical segmentations (a few keys of a few values per
 * model version) need a few hundred.
 */
export const MAX_COMBOS = 2_048;

/** A slice's (or combo's) accumulators: one per label-age bucket of the day, one per hour of D. */
export class WindowedAccumulators {
  /** Per age bucket (the last one is the run's own cutoff); bucket 0 always exists. */
  readonly buckets: Array<MetricAccumulator | undefined>;
  /** Per hour of D, when hourly windows are on. */
  readonly hours: Array<MetricAccumulator | undefined> | undefined;

  constructor(bucketCount: number, hourly: boolean) {
    this.buckets = new Array<MetricAccumulator | undefined>(bucketCount).fill(undefined);
    this.buckets[0] = new MetricAccumulator();
    this.hours = hourly ? new Array<MetricAccumulator | undefined>(HOURS_PER_DAY).fill(undefined) : undefined;
  }

  /** The accumulator of age bucket b. */
  bucket(b: number): MetricAccumulator {
    return (this.buckets[b] ??= new MetricAccumulator());
  }

  /** The accumulator of hour h, or undefined when hours are off or h is -1 (misplaced). */
  hour(h: number): MetricAccumulator | undefined {
    if (this.hours === undefined || h < 0) return undefined;
    return (this.hours[h] ??= new MetricAccumulator());
  }

  /** Adds another one, window by window. */
  merge(other: WindowedAccumulators): void {
    other.buckets.forEach((acc, b) => acc !== undefined && this.bucket(b).merge(acc));
    other.hours?.forEach((acc, h) => acc !== undefined && this.hour(h)!.merge(acc));
  }

  /** A copy that shares nothing with this one. */
  clone(): WindowedAccumulators {
    const copy = new WindowedAccumulators(this.buckets.length, this.hours !== undefined);
    copy.merge(this);
    return copy;
  }

  /** Writes every window's accumulator (absent ones as a 0 flag). */
  writeTo(out: StateWriter): void {
    out.u32(this.buckets.length);
    out.bool(this.hours !== undefined);
    for (const acc of [...this.buckets, ...(this.hours ?? [])]) {
      out.bool(acc !== undefined);
      acc?.writeTo(out);
    }
  }

  /** Reads what writeTo wrote; the run's bucket count and hourly setting must match. */
  static readFrom(input: StateReader, bucketCount: number, hourly: boolean): WindowedAccumulators {
    const buckets = input.u32('label-age bucket count');
    const hours = input.bool('hourly flag');
    if (buckets !== bucketCount || hours !== hourly) {
      throw new StateFormatError(`accumulators of ${buckets} label-age buckets${hours ? ' and hours' : ''}, expected ${bucketCount}${hourly ? ' and hours' : ''}`, input.offset);
    }
    const windows = new WindowedAccumulators(bucketCount, hourly);
    for (let b = 0; b < bucketCount; b++) windows.buckets[b] = input.bool('accumulator flag') ? MetricAccumulator.readFrom(input) : undefined;
    for (let h = 0; hourly && h < HOURS_PER_DAY; h++) windows.hours![h] = input.bool('accumulator flag') ? MetricAccumulator.readFrom(input) : undefined;
    if (windows.buckets[0] === undefined) throw new StateFormatError('label-age bucket 0 is missing', input.offset);
    return windows;
  }
}

/** Kept predictions of one model version with the same value (or absence) for every segment key. */
export interface Combo {
  group: number;
  /** (key id, value id) pairs, sorted by key id. */
  pairs: number[];
  windows: WindowedAccumulators;
  /** Kept predictions, invalid ones included (the ranking of SPEC §5 counts those). */
  kept: number;
}

// A delay row's second word: delay bin + 2^15 (16 bits), age bucket (5 bits), removal (1 bit), hour + 1 (5 bits, 0: none).
const KEY_BIAS = 32_768;
const BUCKET_SHIFT = 16;
const REMOVAL_BIT = 1 << 21;
const HOUR_SHIFT = 22;

/** Decoded delay row: which histograms of its combo's slices it changes. */
export interface DelayRow {
  key: number;
  bucket: number;
  sign: number;
  /** -1: not in an hour (a removal, a misplaced prediction, or hours off). */
  hour: number;
}

/** Decodes a delay row's second word. */
export function decodeDelayRow(code: number, out: DelayRow): DelayRow {
  out.key = (code & 0xffff) - KEY_BIAS;
  out.bucket = (code >>> BUCKET_SHIFT) & 31;
  out.sign = code & REMOVAL_BIT ? -1 : 1;
  out.hour = ((code >>> HOUR_SHIFT) & 31) - 1;
  return out;
}

/** What the metric side needs of a run (JoinSettings, resolved). */
export interface ComboSettings {
  day: DayWindow;
  /** The ages written (seconds, ascending): end of D + A at or before the run's labels-through. */
  labelAgesSeconds: readonly number[];
  hourly: boolean;
}

/** Combo and delay-row keys: combo * 2^32 + the delay row's packed code, exact below 2^53. */
const CODE_SPAN = 2 ** 32;

/** The key of a delay row of `combo` with the packed `code`. */
export function delayRowKey(combo: number, code: number): number {
  return combo * CODE_SPAN + code;
}

/** The combo of a delay row key. */
export function comboOfDelayKey(key: number): number {
  return Math.floor(key / CODE_SPAN);
}

/** The packed code of a delay row key. */
export function codeOfDelayKey(key: number): number {
  return key - comboOfDelayKey(key) * CODE_SPAN;
}

/**
 * Labeled states counted by delay row key (combo and packed delay code, in one KeyCounts: no Map
 * entry or boxed number per row), and delay counts received from elsewhere as delay row keys with
 * their counts.
 */
export class DelayCounts {
  /** Delay row key → states. */
  readonly counted = new KeyCounts();
  /** Counts handed over by worker threads (join-task.ts): delay row keys and their counts. */
  readonly received: Array<{ keys: Float64Array; counts: Float64Array }> = [];

  /** Counts one more labeled state of `combo` with the packed `code`. */
  count(combo: number, code: number): void {
    this.counted.add(delayRowKey(combo, code), 1);
  }

  /** Calls `each` with every count as (delay row key, count), received ones included; a key may come more than once. */
  forEach(each: (key: number, count: number) => void): void {
    const counted = this.counted;
    for (let at = 0; at < counted.size; at++) each(counted.keyAt(at), counted.countAt(at));
    for (const { keys, counts } of this.received) for (let i = 0; i < keys.length; i++) each(keys[i]!, counts[i]!);
  }

  /** The counts counted here as delay row keys and counts, in two arrays (to hand over). */
  take(): { keys: Float64Array; counts: Float64Array } {
    return this.counted.toArrays();
  }

  /** Bytes held. */
  get byteSize(): number {
    return this.counted.byteSize + this.received.reduce((n, part) => n + part.keys.byteLength + part.counts.byteLength, 0);
  }
}

/** Sends maturity states into one combo's windows, and its labeled states to the delay rows. */
export class ComboSink implements ContributionSink {
  target!: WindowedAccumulators;
  combo = 0;
  hour = -1;

  constructor(private readonly delays: DelayCounts) {}

  prediction(valid: boolean, misplaced: boolean, hour: number): void {
    this.target.bucket(0).addPrediction(valid, misplaced);
    this.target.hour(hour)?.addPrediction(valid, misplaced);
  }

  state(bucket: number, sign: number, final: boolean, invalidLabels: number, duplicateLabels: number, labeled: boolean, yTrue: number, yPred: number, delaySeconds: number, negativeDelay: boolean): void {
    this.target.bucket(bucket).addLabelState(sign, invalidLabels, duplicateLabels, labeled, yTrue, yPred, delaySeconds, negativeDelay);
    const hourAcc = final ? this.target.hour(this.hour) : undefined;
    hourAcc?.addLabelState(1, invalidLabels, duplicateLabels, labeled, yTrue, yPred, delaySeconds, negativeDelay);
    if (!labeled) return;
    const code = (delayKey(delaySeconds) + KEY_BIAS) | (bucket << BUCKET_SHIFT) | (sign < 0 ? REMOVAL_BIT : 0) | ((hourAcc === undefined ? 0 : this.hour + 1) << HOUR_SHIFT);
    this.delays.count(this.combo, code);
  }
}

/** Sends maturity states into several slices at once (the replay of overflow rows), delays included. */
export class SliceSink implements ContributionSink {
  targets: WindowedAccumulators[] = [];
  hour = -1;

  prediction(valid: boolean, misplaced: boolean, hour: number): void {
    for (const t of this.targets) {
      t.bucket(0).addPrediction(valid, misplaced);
      t.hour(hour)?.addPrediction(valid, misplaced);
    }
  }

  state(bucket: number, sign: number, final: boolean, invalidLabels: number, duplicateLabels: number, labeled: boolean, yTrue: number, yPred: number, delaySeconds: number, negativeDelay: boolean): void {
    const key = labeled ? delayKey(delaySeconds) : undefined;
    for (const t of this.targets) {
      t.bucket(bucket).addLabelState(sign, invalidLabels, duplicateLabels, labeled, yTrue, yPred, delaySeconds, negativeDelay, key);
      if (final) t.hour(this.hour)?.addLabelState(1, invalidLabels, duplicateLabels, labeled, yTrue, yPred, delaySeconds, negativeDelay, key);
    }
  }
}

/** Overflow row flags: the prediction is misplaced (outside D); it carries an inline y_true. */
export const ROW_MISPLACED = 1;
export const ROW_INLINE = 2;

/** Combos, overflow rows and delay rows of one day's join; DayJoin feeds it one kept prediction at a time. */
export class ComboStore {
  readonly maturity: LabelMaturity;
  readonly settings: ComboSettings;
  readonly combos: Combo[] = [];
  /** Combos by a hash of (group, pairs): the newest combo of each hash, and per combo the previous one of its hash (-1 ends). */
  private readonly comboHeads = new Map<number, number>();
  private readonly comboChain: number[] = [];
  /** The hash computed by the last findCombo. */
  private comboHash = 0;
  /** Labeled states of combo predictions, counted by delay row key (combo, packed bucket/sign/hour/delay bin). */
  readonly delays = new DelayCounts();
  private readonly sink = new ComboSink(this.delays);
  /** Per kept prediction: 2 × combo index, or 2 × row index + 1. */
  private readonly keptRef = uint32Column();
  /** Per kept prediction: its hour of D + 1 (0: misplaced), for duplicates counted in hourly records. */
  private readonly keptHour = uint8Column();


  /** Per key id: how many *rows* carry the key (combos count their own). */
  readonly keyPairCounts: number[] = [];
  // One entry per prediction kept as a row (only once maxCombos combos exist).
  readonly rowGroup = uint32Column();
  readonly rowFlags = uint8Column();
  readonly rowHour = uint8Column();
  readonly rowDuplicatePredictions = uint32Column();
  readonly rowInferenceTs = float64Column();
  readonly rowYPred = float64Column();
  readonly rowInlineYTrue = float64Column();
  /** Label chain head + 1 (0: none). */
  readonly rowHead = uint32Column();
  readonly rowCutoff = float64Column();
  /** Start of the row's (key id, value id) pairs in `segmentPairs`; the next row's start ends them. */
  readonly rowPairStart = float64Column();
  readonly segmentPairs = uint32Column();

  constructor(
    settings: ComboSettings,
    /** The run's labels: overflow rows point into it by chain head until DayMetrics.of copies their chains. */
    readonly labels: LabelChains,
    private readonly maxCombos = MAX_COMBOS,
  ) {
    this.settings = settings;
    this.maturity = new LabelMaturity(labels, settings.labelAgesSeconds.map((age) => ageEndMicros(settings.day, age)));
  }

  /** Number of predictions kept as rows (not in a combo). */
  get rowCount(): number {
    return this.rowGroup.size;
  }

  /** Bytes held by the columns (combos are bounded by maxCombos), for the memory log line. */
  get byteSize(): number {
    const columns = [this.keptRef, this.keptHour, this.rowGroup, this.rowFlags, this.rowHour, this.rowDuplicatePredictions, this.rowInferenceTs, this.rowYPred, this.rowInlineYTrue, this.rowHead, this.rowCutoff, this.rowPairStart, this.segmentPairs];
    return columns.reduce((sum, column) => sum + column.byteSize, 0) + this.delays.byteSize;
  }

  /** The combo of (group, pairs), or undefined; no string is built per prediction. */
  private findCombo(group: number, pairs: readonly number[]): number | undefined {
    let h = Math.imul(group + 1, 0x9e3779b1);
    for (let i = 0; i < pairs.length; i++) h = Math.imul(h ^ (pairs[i]! + 0x7f4a7c15), 0x85ebca6b) ^ (h >>> 15);
    this.comboHash = h;
    for (let at = this.comboHeads.get(h) ?? -1; at >= 0; at = this.comboChain[at]!) {
      const candidate = this.combos[at]!;
      if (candidate.group !== group || candidate.pairs.length !== pairs.length) continue;
      let same = true;
      for (let i = 0; i < pairs.length && same; i++) same = candidate.pairs[i] === pairs[i];
      if (same) return at;
    }
    return undefined;
  }

  /** A new accumulator set with this run's buckets and hours. */
  newWindows(): WindowedAccumulators {
    return new WindowedAccumulators(this.maturity.bucketCount, this.settings.hourly);
  }

  /**
   * Adds one kept prediction of `group` with the segment `pairs` (key id, value id, sorted by key id):
   * its own values, its label chain head (-1: none) and its own cutoff (SPEC §3).
   */
  add(group: number, pairs: readonly number[], inferenceTs: number, yPred: number, inlineYTrue: number | null, head: number, cutoff: number): void {
    const hour = hourOfDay(this.settings.day, inferenceTs);
    const combo = this.place(group, pairs, hour);
    if (combo < 0) {
      this.addRow(group, pairs, hour, inferenceTs, yPred, inlineYTrue, head, cutoff);
      return;
    }
    const sink = this.sink;
    sink.target = this.combos[combo]!.windows;
    sink.combo = combo;
    sink.hour = hour;
    this.maturity.contribute(sink, hour, hour < 0, inferenceTs, yPred, inlineYTrue, head, cutoff);
  }

  /**
   * The first half of `add`: records the kept prediction's hour and finds or creates its combo,
   * counting it there; -1 when every combo slot is taken by others (the prediction is then added
   * with `addRow`). Its figures go into the combo's windows separately (`add`, or a worker's join
   * task whose windows are merged in with `absorbWindows`).
   */
  place(group: number, pairs: readonly number[], hour: number): number {
    this.keptHour.push(hour + 1);
    let combo = this.findCombo(group, pairs);
    if (combo === undefined && this.combos.length < this.maxCombos) {
      combo = this.combos.length;
      this.comboChain.push(this.comboHeads.get(this.comboHash) ?? -1);
      this.comboHeads.set(this.comboHash, combo);
      this.combos.push({ group, pairs: pairs.slice(), windows: this.newWindows(), kept: 0 });
    }
    if (combo === undefined) return -1;
    this.keptRef.push(combo * 2);
    this.combos[combo]!.kept++;
    return combo;
  }

  /** `place` of a kept prediction whose combo is already known (the same group and pairs as an earlier `place`). */
  placeIn(combo: number, hour: number): void {
    this.keptHour.push(hour + 1);
    this.keptRef.push(combo * 2);
    this.combos[combo]!.kept++;
  }

  /** The second half of `add` for a prediction that `place` could not give a combo: an overflow row. */
  addRow(group: number, pairs: readonly number[], hour: number, inferenceTs: number, yPred: number, inlineYTrue: number | null, head: number, cutoff: number): void {
    this.keptRef.push(this.rowGroup.size * 2 + 1);
    this.rowGroup.push(group);
    this.rowPairStart.push(this.segmentPairs.size);
    for (let i = 0; i < pairs.length; i += 2) {
      this.segmentPairs.push(pairs[i]!);
      this.segmentPairs.push(pairs[i + 1]!);
      this.keyPairCounts[pairs[i]!] = (this.keyPairCounts[pairs[i]!] ?? 0) + 1;
    }
    this.rowFlags.push((hour < 0 ? ROW_MISPLACED : 0) | (inlineYTrue === null ? 0 : ROW_INLINE));
    this.rowHour.push(hour + 1);
    this.rowDuplicatePredictions.push(0);
    this.rowInferenceTs.push(inferenceTs);
    this.rowYPred.push(yPred);
    this.rowInlineYTrue.push(inlineYTrue ?? 0);
    this.rowHead.push(head + 1);
    this.rowCutoff.push(cutoff);
  }

  /**
   * Adds windows that a worker accumulated for placed predictions (join-task.ts): per combo in
   * `combos` order, as WindowedAccumulators.writeTo wrote them into `state`. Everything merged is
   * exact and counted, so the order of absorbs does not matter.
   */
  absorbWindows(combos: Int32Array, state: StateReader): void {
    for (const combo of combos) this.combos[combo]!.windows.merge(WindowedAccumulators.readFrom(state, this.maturity.bucketCount, this.settings.hourly));
  }

  /** Adds delay counts that a worker accumulated (join-task.ts): keys and their counts. */
  absorbDelays(keys: Float64Array, counts: Float64Array): void {
    this.delays.received.push({ keys, counts });
  }

  /** Counts a dropped duplicate in the slices of the kept prediction `kept` (its index among kept ones). */
  duplicate(kept: number): void {
    const ref = this.keptRef.get(kept);
    if (ref & 1) {
      this.rowDuplicatePredictions.add(ref >>> 1, 1);
      return;
    }
    const windows = this.combos[ref >>> 1]!.windows;
    windows.bucket(0).duplicatePredictionCount++;
    const hourAcc = windows.hour(this.keptHour.get(kept) - 1);
    if (hourAcc !== undefined) hourAcc.duplicatePredictionCount++;
  }
}

/** Adds `count` equal delay rows to the histograms of `targets` (the slices of their combo). */
export function addDelayRow(row: DelayRow, count: number, targets: readonly WindowedAccumulators[]): void {
  for (const t of targets) {
    (t.bucket(row.bucket).delays ??= new DelayHistogram()).addKey(row.key, row.sign * count);
    if (row.hour >= 0) (t.hour(row.hour)!.delays ??= new DelayHistogram()).addKey(row.key, count);
  }
}
