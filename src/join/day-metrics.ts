/**
 * The metric side of one day's join as a self-contained value (SPEC §5, §5.1, §9): everything
 * computeSlices needs, copied out of a finished DayJoin so the join and its LabelIndex can be
 * dropped; mergeable with the DayMetrics of joins over disjoint sets of prediction ids (hash
 * buckets of one process, or shards on several pods); and serializable exactly, to cross from a
 * join pod to the commit pod.
 *
 * Why a merge gives the bytes of one in-memory pass: every prediction id lives in exactly one part,
 * so dedup, label choice and maturity (all per id) are the same in its part as in one pass; each
 * part's contribution is counts, exact sums (ExactSumBank), maxima and integer histogram bins, all
 * order-independent; and everything that depends on ids (groups, segment keys, values, combos) is
 * matched by its strings, while computeSlices orders its output by strings only. Which
 * predictions became combos and which overflow rows differs per part, but both reach the slices
 * through the same maturity rule (combos.ts), so that split never shows in the output.
 *
 * Memory: a part holds at most MAX_COMBOS combos (the join's limit) plus its overflow rows; a
 * merge unions combos by their strings, so a merged value holds at most parts × MAX_COMBOS combos
 * (and never more than the day's distinct combos) — with a day split into K parts merged one at a
 * time, the commit holds the merged value plus one part. Overflow rows cost ~80 bytes each plus
 * 8 per segment value and 17 per label of their chain, as in the join.
 *
 * Bytes (`toBytes`): the magic `MMDAYMET`, a format version, the payload (state-codec.ts: doubles
 * bit for bit, every exact-sum limb and histogram bin), then the sha256 of all that. A damaged
 * file, a truncated one or another version fails with E_CORRUPT_OBJECT naming its URI.
 *
 * Length: over ~400 lines because the copy out of a join, the merge and the byte layout are one unit: every
 * field `of` copies is merged by `merge`, written by `toBytes` and checked by `fromBytes`, and a
 * field missed in one of the four would break bit-identity only in some runs.
 */
import { createHash } from 'node:crypto';
import { CorruptObjectError, ModelMetricsError } from '../errors.js';
import { StateFormatError, StateReader, StateWriter } from '../metrics/state-codec.js';
import { type Combo, type ComboSettings, ROW_INLINE, ROW_MISPLACED, type SliceSink, WindowedAccumulators, codeOfDelayKey, comboOfDelayKey, delayRowKey } from './combos.js';
import { KeyCounts } from './key-counts.js';
import { type DayJoin, type JoinStats, MAX_SEGMENT_KEY_NAMES, siftPair, tooManyKeyNames } from './day-join.js';
import type { LabelChains } from './label-index.js';
import { LabelMaturity } from './maturity.js';
import { ageEndMicros } from './windows.js';

/** Bumped on any change of the byte layout; a state of another version is refused, not guessed at. */
export const DAY_METRICS_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('MMDAYMET', 'latin1');
const DIGEST_BYTES = 32;

/** Most combos a merged value may hold so that delay keys stay exact (2^53 / 2^32). */
const MAX_MERGED_COMBOS = 2 ** 21;

/** One model version of the day. */
export interface GroupName {
  modelName: string;
  modelVersion: string;
}

/**
 * The overflow rows' label chains, copied out of the LabelIndex: per row its labels oldest first,
 * so a later label in (object key, record) order has the larger number (the tie rule of
 * chooseLabel), and the chain runs from the row's last label down to its first.
 */
class RowLabels implements LabelChains {
  readonly ts: number[] = [];
  readonly truths: number[] = [];
  /** 1 for the first (oldest) label of a row's chain. */
  readonly first: number[] = [];

  next(label: number): number {
    return this.first[label] === 1 ? -1 : label - 1;
  }

  yTrue(label: number): number {
    return this.truths[label]!;
  }

  labelTs(label: number): number {
    return this.ts[label]!;
  }

  /** Appends one chain, oldest label first; returns the new end. */
  push(ts: readonly number[], truths: readonly number[]): number {
    for (let i = 0; i < ts.length; i++) {
      this.first.push(i === 0 ? 1 : 0);
      this.ts.push(ts[i]!);
      this.truths.push(truths[i]!);
    }
    return this.ts.length;
  }
}

/** The predictions kept as rows past MAX_COMBOS, as plain columns (one entry per row). */
class OverflowRows {
  readonly group: number[] = [];
  readonly flags: number[] = [];
  /** Hour of D + 1 (0: misplaced). */
  readonly hour: number[] = [];
  readonly duplicates: number[] = [];
  readonly inferenceTs: number[] = [];
  readonly yPred: number[] = [];
  readonly inlineYTrue: number[] = [];
  readonly cutoff: number[] = [];
  /** End of the row's (key id, value id) pairs in `pairs`; the previous row's end starts them. */
  readonly pairEnd: number[] = [];
  readonly pairs: number[] = [];
  /** End of the row's chain in `labels`; the previous row's end starts it. */
  readonly labelEnd: number[] = [];
  readonly labels = new RowLabels();

  get size(): number {
    return this.group.length;
  }

  pairStart(row: number): number {
    return row === 0 ? 0 : this.pairEnd[row - 1]!;
  }

  labelStart(row: number): number {
    return row === 0 ? 0 : this.labelEnd[row - 1]!;
  }

  /** The row's label chain head (its latest label), or -1. */
  head(row: number): number {
    const start = this.labelStart(row);
    const end = this.labelEnd[row]!;
    return end > start ? end - 1 : -1;
  }
}

/** Appends one overflow row to `into`: its fields, its segment pairs (in `into`'s ids) and its label chain, oldest first. */
function pushRow(into: OverflowRows, fields: { group: number; flags: number; hour: number; duplicates: number; inferenceTs: number; yPred: number; inlineYTrue: number; cutoff: number }, pairs: readonly number[], chainTs: readonly number[], chainTruths: readonly number[]): void {
  into.group.push(fields.group);
  into.flags.push(fields.flags);
  into.hour.push(fields.hour);
  into.duplicates.push(fields.duplicates);
  into.inferenceTs.push(fields.inferenceTs);
  into.yPred.push(fields.yPred);
  into.inlineYTrue.push(fields.inlineYTrue);
  into.cutoff.push(fields.cutoff);
  for (const v of pairs) into.pairs.push(v);
  into.pairEnd.push(into.pairs.length);
  into.labelEnd.push(into.labels.push(chainTs, chainTruths));
}

/** Sorts (key id, value id) pairs by key id, in place. */
function sortPairs(pairs: number[]): number[] {
  for (let at = 2; at < pairs.length; at += 2) siftPair(pairs, at);
  return pairs;
}

const STAT_FIELDS = ['predictionsRead', 'kept', 'duplicatesDropped', 'invalid', 'labeled', 'labeledFromLabels', 'labeledInline'] as const satisfies ReadonlyArray<keyof JoinStats>;

/** The metric state of a day's join (or of a part of it over some prediction ids); see the header. */
export class DayMetrics {
  readonly settings: ComboSettings;
  readonly groups: GroupName[] = [];
  readonly keyNames: string[] = [];
  /** Per key id, its values by value id. */
  readonly keyValues: string[][] = [];
  readonly combos: Combo[] = [];
  /** Labeled states of combo predictions: combo * 2^32 + packed code (combos.ts) → how many. */
  readonly delays = new KeyCounts();
  readonly rows = new OverflowRows();
  readonly stats: JoinStats = { predictionsRead: 0, kept: 0, duplicatesDropped: 0, invalid: 0, labeled: 0, labeledFromLabels: 0, labeledInline: 0 };

  // String → id lookups, kept in step with the lists above.
  private readonly groupIds = new Map<string, number>();
  private readonly keyIds = new Map<string, number>();
  private readonly valueIds: Array<Map<string, number>> = [];
  private readonly comboIds = new Map<string, number>();

  private constructor(settings: ComboSettings) {
    this.settings = { day: { ...settings.day }, labelAgesSeconds: [...settings.labelAgesSeconds], hourly: settings.hourly };
  }

  /** An empty state for a run with these settings (a day without predictions, or the start of a merge). */
  static empty(settings: ComboSettings): DayMetrics {
    return new DayMetrics(settings);
  }

  /** Copies the metric side of a finished join: afterwards the join and its LabelIndex may be dropped. */
  static of(join: DayJoin): DayMetrics {
    const store = join.metrics;
    const out = new DayMetrics(store.settings);
    for (const g of join.groups) out.groupOf(g.modelName, g.modelVersion);
    join.keyNames.forEach((name, keyId) => {
      out.keyOf(name);
      const values = join.keyValues[keyId]!;
      for (let v = 0; v < values.size; v++) out.valueOf(keyId, values.keyAt(v));
    });
    for (const combo of store.combos) out.addCombo(combo.group, combo.pairs.slice(), combo.windows, combo.kept);
    store.delays.forEach((key, count) => out.addDelays(key, count));

    const labels = store.labels;
    const chainTs: number[] = [];
    const chainTruths: number[] = [];
    const pairs: number[] = [];
    const rowCount = store.rowCount;
    for (let row = 0; row < rowCount; row++) {
      pairs.length = 0;
      const end = row + 1 < rowCount ? store.rowPairStart.get(row + 1) : store.segmentPairs.size;
      for (let i = store.rowPairStart.get(row); i < end; i++) pairs.push(store.segmentPairs.get(i));
      // The index's chain runs newest to oldest; the copy is stored oldest first (see RowLabels).
      chainTs.length = 0;
      chainTruths.length = 0;
      for (let label = store.rowHead.get(row) - 1; label >= 0; label = labels.next(label)) {
        chainTs.push(labels.labelTs(label));
        chainTruths.push(labels.yTrue(label));
      }
      chainTs.reverse();
      chainTruths.reverse();
      pushRow(
        out.rows,
        {
          group: store.rowGroup.get(row),
          flags: store.rowFlags.get(row),
          hour: store.rowHour.get(row),
          duplicates: store.rowDuplicatePredictions.get(row),
          inferenceTs: store.rowInferenceTs.get(row),
          yPred: store.rowYPred.get(row),
          inlineYTrue: store.rowInlineYTrue.get(row),
          cutoff: store.rowCutoff.get(row),
        },
        pairs,
        chainTs,
        chainTruths,
      );
    }
    for (const field of STAT_FIELDS) out.stats[field] = join.stats[field];
    return out;
  }

  /** Number of label-age buckets (one per written age, plus the run's own cutoff). */
  get bucketCount(): number {
    return this.settings.labelAgesSeconds.length + 1;
  }

  /** A new accumulator set with this run's buckets and hours. */
  newWindows(): WindowedAccumulators {
    return new WindowedAccumulators(this.bucketCount, this.settings.hourly);
  }

  /** The maturity rule of the overflow rows' replay, over their copied label chains. */
  rowMaturity(): LabelMaturity {
    return new LabelMaturity(
      this.rows.labels,
      this.settings.labelAgesSeconds.map((age) => ageEndMicros(this.settings.day, age)),
    );
  }

  /** Replays overflow row `row` into `sink` (its slices), exactly as a combo would have accumulated it. */
  replayRow(row: number, sink: SliceSink, maturity: LabelMaturity): void {
    const rows = this.rows;
    const hour = rows.hour[row]! - 1;
    sink.hour = hour;
    const flags = rows.flags[row]!;
    maturity.contribute(sink, hour, (flags & ROW_MISPLACED) !== 0, rows.inferenceTs[row]!, rows.yPred[row]!, flags & ROW_INLINE ? rows.inlineYTrue[row]! : null, rows.head(row), rows.cutoff[row]!);
    const duplicates = rows.duplicates[row]!;
    if (duplicates === 0) return;
    for (const t of sink.targets) {
      t.bucket(0).duplicatePredictionCount += duplicates;
      const hourAcc = t.hour(hour);
      if (hourAcc !== undefined) hourAcc.duplicatePredictionCount += duplicates;
    }
  }

  /**
   * Adds a part joined over prediction ids disjoint from this one's (same run settings). Any merge
   * order gives the same computeSlices output; `other` is left unchanged and shares nothing with this.
   */
  merge(other: DayMetrics): void {
    this.assertSameRun(other);
    const groupMap = other.groups.map((g) => this.groupOf(g.modelName, g.modelVersion));
    const keyMap = other.keyNames.map((name) => this.keyOf(name));
    const valueMaps = other.keyValues.map((values, keyId) => values.map((value) => this.valueOf(keyMap[keyId]!, value)));
    const remap = (pairs: ArrayLike<number>, start: number, end: number): number[] => {
      const mapped: number[] = [];
      for (let i = start; i < end; i += 2) mapped.push(keyMap[pairs[i]!]!, valueMaps[pairs[i]!]![pairs[i + 1]!]!);
      return sortPairs(mapped);
    };
    const comboMap = other.combos.map((combo) => this.addCombo(groupMap[combo.group]!, remap(combo.pairs, 0, combo.pairs.length), combo.windows, combo.kept));
    for (let at = 0; at < other.delays.size; at++) {
      const key = other.delays.keyAt(at);
      this.addDelays(delayRowKey(comboMap[comboOfDelayKey(key)]!, codeOfDelayKey(key)), other.delays.countAt(at));
    }
    const rows = other.rows;
    const labels = rows.labels;
    for (let row = 0; row < rows.size; row++) {
      const labelStart = rows.labelStart(row);
      const labelEnd = rows.labelEnd[row]!;
      pushRow(
        this.rows,
        {
          group: groupMap[rows.group[row]!]!,
          flags: rows.flags[row]!,
          hour: rows.hour[row]!,
          duplicates: rows.duplicates[row]!,
          inferenceTs: rows.inferenceTs[row]!,
          yPred: rows.yPred[row]!,
          inlineYTrue: rows.inlineYTrue[row]!,
          cutoff: rows.cutoff[row]!,
        },
        remap(rows.pairs, rows.pairStart(row), rows.pairEnd[row]!),
        labels.ts.slice(labelStart, labelEnd),
        labels.truths.slice(labelStart, labelEnd),
      );
    }
    for (const field of STAT_FIELDS) this.stats[field] += other.stats[field];
  }

  private assertSameRun(other: DayMetrics): void {
    const a = this.settings;
    const b = other.settings;
    const same = a.day.startMicros === b.day.startMicros && a.day.endMicros === b.day.endMicros && a.hourly === b.hourly && a.labelAgesSeconds.length === b.labelAgesSeconds.length && a.labelAgesSeconds.every((age, i) => age === b.labelAgesSeconds[i]);
    if (!same) {
      throw new ModelMetricsError('E_INTERNAL', `DayMetrics.merge: parts of different runs (day ${a.day.date} vs ${b.day.date}, label ages ${a.labelAgesSeconds.join(',')} vs ${b.labelAgesSeconds.join(',')}, hourly ${a.hourly} vs ${b.hourly})`, { operation: 'DayMetrics.merge' });
    }
  }

  private groupOf(modelName: string, modelVersion: string): number {
    const key = JSON.stringify([modelName, modelVersion]);
    let id = this.groupIds.get(key);
    if (id === undefined) {
      id = this.groups.length;
      this.groupIds.set(key, id);
      this.groups.push({ modelName, modelVersion });
    }
    return id;
  }

  private keyOf(name: string): number {
    let id = this.keyIds.get(name);
    if (id === undefined) {
      // The join's guard holds for the merged day too: one pass would have refused it.
      if (this.keyNames.length >= MAX_SEGMENT_KEY_NAMES) throw tooManyKeyNames(name);
      id = this.keyNames.length;
      this.keyIds.set(name, id);
      this.keyNames.push(name);
      this.keyValues.push([]);
      this.valueIds.push(new Map());
    }
    return id;
  }

  private valueOf(keyId: number, value: string): number {
    const ids = this.valueIds[keyId]!;
    let id = ids.get(value);
    if (id === undefined) {
      id = this.keyValues[keyId]!.length;
      ids.set(value, id);
      this.keyValues[keyId]!.push(value);
    }
    return id;
  }

  /**
   * Adds a combo's figures to the combo of (group, pairs) in this value's ids; returns its index.
   * A new combo gets a copy of `windows`, or `windows` itself when `owned` (just read from bytes).
   */
  private addCombo(group: number, pairs: number[], windows: WindowedAccumulators, kept: number, owned = false): number {
    const key = `${group}:${pairs.join(',')}`;
    let id = this.comboIds.get(key);
    if (id === undefined) {
      id = this.combos.length;
      if (id >= MAX_MERGED_COMBOS) {
        throw new ModelMetricsError('E_INTERNAL', `DayMetrics.merge: more than ${MAX_MERGED_COMBOS} combos; merge fewer parts`, { operation: 'DayMetrics.merge' });
      }
      this.comboIds.set(key, id);
      this.combos.push({ group, pairs, windows: owned ? windows : windows.clone(), kept });
      return id;
    }
    const combo = this.combos[id]!;
    combo.windows.merge(windows);
    combo.kept += kept;
    return id;
  }

  private addDelays(key: number, count: number): void {
    this.delays.add(key, count);
  }

  /** The exact state as bytes (see the header for the layout). */
  toBytes(): Buffer {
    const out = new StateWriter();
    out.raw(MAGIC);
    out.u32(DAY_METRICS_FORMAT_VERSION);
    const { day, labelAgesSeconds, hourly } = this.settings;
    out.string(day.date);
    out.f64s([day.startMicros, day.endMicros]);
    out.u32(labelAgesSeconds.length);
    out.f64s(labelAgesSeconds);
    out.bool(hourly);
    out.f64s(STAT_FIELDS.map((field) => this.stats[field]));

    out.u32(this.groups.length);
    for (const g of this.groups) {
      out.string(g.modelName);
      out.string(g.modelVersion);
    }
    out.u32(this.keyNames.length);
    this.keyNames.forEach((name, keyId) => {
      out.string(name);
      const values = this.keyValues[keyId]!;
      out.u32(values.length);
      for (const value of values) out.string(value);
    });

    out.u32(this.combos.length);
    for (const combo of this.combos) {
      out.u32(combo.group);
      out.f64(combo.kept);
      out.u32(combo.pairs.length);
      out.u32s(combo.pairs);
      combo.windows.writeTo(out);
    }
    out.u32(this.delays.size);
    for (let at = 0; at < this.delays.size; at++) out.f64s([this.delays.keyAt(at), this.delays.countAt(at)]);

    const rows = this.rows;
    out.f64(rows.size);
    out.u32s(rows.group);
    out.u32s(rows.flags);
    out.u32s(rows.hour);
    for (const column of [rows.duplicates, rows.inferenceTs, rows.yPred, rows.inlineYTrue, rows.cutoff, rows.pairEnd, rows.labelEnd]) out.f64s(column);
    out.f64(rows.pairs.length);
    out.u32s(rows.pairs);
    out.f64(rows.labels.ts.length);
    out.f64s(rows.labels.ts);
    out.f64s(rows.labels.truths);

    const body = out.bytes();
    const digest = createHash('sha256').update(body).digest();
    return Buffer.concat([body, digest]);
  }

  /** Reads `toBytes` output; `uri` names the object in errors (E_CORRUPT_OBJECT on damage or another version). */
  static fromBytes(bytes: Buffer, uri: string): DayMetrics {
    const fail = (what: string, offset?: number, cause?: unknown): never => {
      throw new CorruptObjectError(`${uri}: not a valid day metrics state: ${what}; delete the shard's staging and rerun its join phase`, { uri, operation: 'DayMetrics.fromBytes', ...(offset === undefined ? {} : { offset }) }, cause === undefined ? undefined : { cause });
    };
    if (bytes.length < MAGIC.length + 4 + DIGEST_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
      fail(`expected the magic ${JSON.stringify(MAGIC.toString('latin1'))} and at least ${MAGIC.length + 4 + DIGEST_BYTES} bytes, got ${bytes.length} bytes starting ${JSON.stringify(bytes.subarray(0, 8).toString('latin1'))}`, 0);
    }
    const version = bytes.readUInt32LE(MAGIC.length);
    if (version !== DAY_METRICS_FORMAT_VERSION) fail(`format version ${version}, this job reads version ${DAY_METRICS_FORMAT_VERSION} (written by another job version)`, MAGIC.length);
    const bodyEnd = bytes.length - DIGEST_BYTES;
    const digest = createHash('sha256').update(bytes.subarray(0, bodyEnd)).digest();
    if (!digest.equals(bytes.subarray(bodyEnd))) fail(`sha256 ${digest.toString('hex')} of ${bodyEnd} bytes does not match the recorded ${bytes.subarray(bodyEnd).toString('hex')} (damaged or truncated)`, bodyEnd);
    try {
      return DayMetrics.read(new StateReader(bytes, MAGIC.length + 4, bodyEnd));
    } catch (error) {
      if (error instanceof StateFormatError) return fail(error.message, error.offset, error);
      throw error;
    }
  }

  private static read(input: StateReader): DayMetrics {
    // Every count is bounded by the bytes left, so a damaged count cannot allocate more than the file.
    const most = (bytesEach: number): number => Math.floor(input.remaining / bytesEach);
    const date = input.string('day');
    const [startMicros, endMicros] = input.f64s(2, 'day window');
    const ages = Array.from(input.f64s(input.count('label ages', most(8)), 'label ages'));
    const hourly = input.bool('hourly flag');
    const out = new DayMetrics({ day: { date, startMicros: startMicros!, endMicros: endMicros! }, labelAgesSeconds: ages, hourly });
    const stats = input.f64s(STAT_FIELDS.length, 'join stats');
    STAT_FIELDS.forEach((field, i) => (out.stats[field] = stats[i]!));

    const groupCount = input.count('groups', most(8));
    for (let g = 0; g < groupCount; g++) {
      const name = input.string('model_name');
      out.groupOf(name, input.string('model_version'));
    }
    if (out.groups.length !== groupCount) throw new StateFormatError('a model version is listed twice', input.offset);
    const keyCount = input.count('segment keys', most(8));
    for (let k = 0; k < keyCount; k++) {
      const keyId = out.keyOf(input.string('segment key'));
      const valueCount = input.count('segment values', most(4));
      for (let v = 0; v < valueCount; v++) out.valueOf(keyId, input.string('segment value'));
      if (keyId !== k || out.keyValues[keyId]!.length !== valueCount) throw new StateFormatError('a segment key or value is listed twice', input.offset);
    }
    const checkPairs = (pairs: ArrayLike<number>, start: number, end: number): void => {
      for (let i = start; i < end; i += 2) {
        const keyId = pairs[i]!;
        if (keyId >= keyCount || pairs[i + 1]! >= out.keyValues[keyId]!.length) throw new StateFormatError(`segment pair (${keyId}, ${pairs[i + 1]}) outside the ${keyCount} keys and their values`, input.offset);
      }
    };

    const comboCount = input.count('combos', Math.min(most(8), MAX_MERGED_COMBOS));
    for (let c = 0; c < comboCount; c++) {
      const group = input.u32('combo group');
      if (group >= groupCount) throw new StateFormatError(`combo group ${group} outside the ${groupCount} model versions`, input.offset);
      const kept = input.f64('combo kept');
      const pairLength = input.count('combo pairs', most(4));
      if (pairLength % 2 !== 0) throw new StateFormatError(`combo of ${pairLength} pair entries, expected an even number`, input.offset);
      const pairs = Array.from(input.u32s(pairLength, 'combo pairs'));
      checkPairs(pairs, 0, pairs.length);
      const windows = WindowedAccumulators.readFrom(input, out.bucketCount, hourly);
      if (out.addCombo(group, pairs, windows, kept, true) !== c) throw new StateFormatError('a combo is listed twice', input.offset);
    }
    const delayCount = input.count('delay rows', most(16));
    for (let d = 0; d < delayCount; d++) {
      const [key, count] = input.f64s(2, 'delay row');
      if (!(Number.isSafeInteger(key) && key! >= 0 && comboOfDelayKey(key!) < comboCount)) throw new StateFormatError(`delay row key ${key} outside the ${comboCount} combos`, input.offset);
      out.addDelays(key!, count!);
    }

    const rowCount = input.f64('overflow rows');
    if (!Number.isSafeInteger(rowCount) || rowCount < 0 || rowCount > most(12 + 7 * 8)) throw new StateFormatError(`overflow row count ${rowCount} does not fit the ${input.remaining} bytes left`, input.offset);
    const rows = out.rows;
    const push = (column: number[], values: ArrayLike<number>): void => {
      for (let i = 0; i < values.length; i++) column.push(values[i]!);
    };
    push(rows.group, input.u32s(rowCount, 'row groups'));
    push(rows.flags, input.u32s(rowCount, 'row flags'));
    push(rows.hour, input.u32s(rowCount, 'row hours'));
    for (const column of [rows.duplicates, rows.inferenceTs, rows.yPred, rows.inlineYTrue, rows.cutoff, rows.pairEnd, rows.labelEnd]) push(column, input.f64s(rowCount, 'row column'));
    const pairCount = input.f64('row segment pairs');
    if (!Number.isSafeInteger(pairCount) || pairCount < 0 || pairCount > most(4)) throw new StateFormatError(`row segment pair count ${pairCount} does not fit the bytes left`, input.offset);
    push(rows.pairs, input.u32s(pairCount, 'row segment pairs'));
    const labelCount = input.f64('row labels');
    if (!Number.isSafeInteger(labelCount) || labelCount < 0 || labelCount > most(16)) throw new StateFormatError(`row label count ${labelCount} does not fit the bytes left`, input.offset);
    push(rows.labels.ts, input.f64s(labelCount, 'row label_ts'));
    push(rows.labels.truths, input.f64s(labelCount, 'row y_true'));
    input.expectEnd();

    let pairStart = 0;
    let labelStart = 0;
    for (let row = 0; row < rowCount; row++) {
      const pairEnd = rows.pairEnd[row]!;
      const labelEnd = rows.labelEnd[row]!;
      if (rows.group[row]! >= groupCount || rows.hour[row]! > 24 || rows.flags[row]! > (ROW_MISPLACED | ROW_INLINE)) throw new StateFormatError(`overflow row ${row}: group, hour or flags out of range`, input.offset);
      if (!(pairEnd >= pairStart && pairEnd <= pairCount && (pairEnd - pairStart) % 2 === 0 && labelEnd >= labelStart && labelEnd <= labelCount)) throw new StateFormatError(`overflow row ${row}: segment pairs or labels out of range`, input.offset);
      checkPairs(rows.pairs, pairStart, pairEnd);
      for (let label = labelStart; label < labelEnd; label++) rows.labels.first.push(label === labelStart ? 1 : 0);
      pairStart = pairEnd;
      labelStart = labelEnd;
    }
    if (pairStart !== pairCount || labelStart !== labelCount) throw new StateFormatError('overflow rows do not cover their segment pairs and labels', input.offset);
    return out;
  }
}
