/**
 * The probe side of the streaming hash join of one day (SPEC §3): predictions are fed in (object
 * key, record) order; each kept one comes back enriched with its winning label. For the metrics,
 * a kept prediction is accumulated at once into its *combo* — the predictions of one model version
 * with the same value for every segment key — and combos are merged into slices once the day is
 * complete (see `slices.ts`), when the top values of each key are known. Past MAX_COMBOS distinct
 * combos (a high-cardinality key), predictions are kept as compact rows instead (about 50 bytes
 * plus 8 per segment value), so memory stays bounded whatever the cardinality.
 */
import { chooseLabel, finalCutoffMicros, finalReadyAtMicros, newLabelChoice, type DayWindow } from './policy.js';
import type { LabelIndex } from './label-index.js';
import { StringKeyTable } from './key-table.js';
import { float64Column, uint32Column, uint8Column } from './columns.js';
import { RowKind, type EnrichedRecord, type PredictionRecord, type Stage } from './records.js';
import { HAS_Y_TRUE, type JoinResults, type PredictionBatch } from '../workers/batches.js';
import { UsageError } from '../errors.js';
import { MetricAccumulator } from '../metrics/accumulator.js';

/** What decides cutoffs and slices for one day and stage. */
export interface JoinSettings {
  stage: Stage;
  day: DayWindow;
  /** Preliminary cutoff (SPEC §3): labels with label_ts <= asOf are usable. */
  asOfMicros: number;
  /** Final cutoff offset: inference_ts + window. */
  windowMicros: number;
  /** Keys to slice on; undefined means every key seen on kept predictions. */
  sliceKeys: readonly string[] | undefined;
}

/** Flag bits of a kept prediction row. */
export const RowFlag = { valid: 1, labeled: 2, negativeDelay: 4, misplaced: 8 } as const;

/**
 * Most combos. Each holds a MetricAccumulator, whose delay sketch takes up to ~25 KiB when its
 * delays span milliseconds to weeks, so this bounds combos to ~50 MiB in the worst case; typical
 * segmentations (a few keys of a few values per model version) need a few hundred.
 */
export const MAX_COMBOS = 2_048;

/** Kept predictions of one model version with the same value (or absence) for every segment key. */
export interface Combo {
  group: number;
  /** (key id, value id) pairs, sorted by key id. */
  pairs: number[];
  accumulator: MetricAccumulator;
  /** Kept predictions, invalid ones included (the ranking of SPEC §5 counts those). */
  kept: number;
}

/** Adds one kept prediction's figures to an accumulator (the one place that maps row flags to metrics). */
export function accumulateRow(
  acc: MetricAccumulator,
  flags: number,
  invalid: number,
  duplicatePredictions: number,
  duplicateLabels: number,
  yTrue: number,
  yPred: number,
  delaySeconds: number,
): void {
  acc.invalidCount += invalid;
  acc.duplicatePredictionCount += duplicatePredictions;
  acc.duplicateLabelCount += duplicateLabels;
  if (flags & RowFlag.misplaced) acc.misplacedCount++;
  if (!(flags & RowFlag.valid)) return;
  if (flags & RowFlag.labeled) {
    if (flags & RowFlag.negativeDelay) acc.negativeDelayCount++;
    acc.addLabeled(yTrue, yPred, delaySeconds);
  } else {
    acc.addUnlabeled();
  }
}

/** A guard against producers that put ids into segment key *names*: slicing on each would explode. */
export const MAX_SEGMENT_KEY_NAMES = 1000;

/** A batch's dictionary code not yet mapped to a segment key id. */
const UNSEEN = -2;

/** Running totals of the probe, for logs, progress and the manifest. */
export interface JoinStats {
  predictionsRead: number;
  kept: number;
  duplicatesDropped: number;
  invalid: number;
  labeled: number;
  labeledFromLabels: number;
  labeledInline: number;
}

/**
 * The enriched record, built field by field: one object shape for every record (fast to encode),
 * and no copying of the decoder's record class with an object spread on the hot path.
 */
function enriched(
  p: PredictionRecord,
  yTrue: number | null,
  residual: number | null,
  labelTs: number | null,
  delaySeconds: number | null,
  source: EnrichedRecord['label_source'],
): EnrichedRecord {
  return {
    prediction_id: p.prediction_id,
    model_name: p.model_name,
    model_version: p.model_version,
    featureset_version: p.feature_set_version,
    y_pred: p.y_pred,
    y_true: yTrue,
    residual,
    inference_ts: p.inference_ts,
    segment_keys: p.segment_keys,
    label_ts: labelTs,
    label_delay_seconds: delaySeconds,
    label_source: source,
  };
}

/** Probes the label index with each prediction of the day and keeps the metric columns. */
export class DayJoin {
  /** Dedup of prediction ids; entry index = the kept prediction's index. */
  private readonly seen: StringKeyTable;
  private readonly choice = newLabelChoice();
  /** End of D + label window: no final cutoff lies beyond it. */
  private readonly finalClose: number;

  /** (model_name, model_version) → group id, and back. */
  private readonly groupIds = new Map<string, Map<string, number>>();
  readonly groups: Array<{ modelName: string; modelVersion: string }> = [];

  /** Segment key name → key id, and back; values are interned per key. */
  private readonly keyIds = new Map<string, number>();
  readonly keyNames: string[] = [];
  readonly keyValues: StringKeyTable[] = [];
  /** Per key id: how many *rows* carry the key (combos count their own). */
  readonly keyPairCounts: number[] = [];
  private readonly allowedKeys: Set<string> | undefined;
  /** The current prediction's (key id, value id) pairs, sorted by key id. */
  private readonly pairScratch: number[] = [];

  readonly combos: Combo[] = [];
  /** Combos by a hash of (group, pairs): the newest combo of each hash, and per combo the previous one of its hash (-1 ends). */
  private readonly comboHeads = new Map<number, number>();
  private readonly comboChain: number[] = [];
  /** The hash computed by the last findCombo. */
  private comboHash = 0;
  /** Per kept prediction: 2 × combo index, or 2 × row index + 1. */
  private readonly keptRef = uint32Column();

  // One entry per prediction kept as a row (only once MAX_COMBOS combos exist).
  readonly rowGroup = uint32Column();
  readonly rowFlags = uint8Column();
  readonly rowInvalid = uint32Column();
  readonly rowDuplicatePredictions = uint32Column();
  readonly rowDuplicateLabels = uint32Column();
  readonly rowYTrue = float64Column();
  readonly rowYPred = float64Column();
  readonly rowDelaySeconds = float64Column();
  /** Start of the row's (key id, value id) pairs in `segmentPairs`; the next row's start ends them. */
  readonly rowPairStart = float64Column();
  readonly segmentPairs = uint32Column();

  readonly stats: JoinStats = { predictionsRead: 0, kept: 0, duplicatesDropped: 0, invalid: 0, labeled: 0, labeledFromLabels: 0, labeledInline: 0 };

  /**
   * `expectedPredictions` presizes the dedup table (an estimate; it grows past it); `maxCombos`
   * is lowered only by tests, to exercise the row overflow.
   */
  constructor(
    private readonly settings: JoinSettings,
    private readonly labels: LabelIndex,
    expectedPredictions = 1024,
    private readonly maxCombos = MAX_COMBOS,
  ) {
    this.seen = new StringKeyTable(expectedPredictions);
    this.finalClose = finalReadyAtMicros(settings.day, settings.windowMicros);
    this.allowedKeys = settings.sliceKeys === undefined ? undefined : new Set(settings.sliceKeys);
  }

  /** Number of predictions kept as rows (not in a combo). */
  get rowCount(): number {
    return this.rowGroup.size;
  }

  /** Bytes held by the probe's structures, for the memory log line. */
  get byteSize(): number {
    const columns = [this.keptRef, this.rowGroup, this.rowFlags, this.rowInvalid, this.rowDuplicatePredictions, this.rowDuplicateLabels, this.rowYTrue, this.rowYPred, this.rowDelaySeconds, this.rowPairStart, this.segmentPairs];
    return this.seen.byteSize + columns.reduce((sum, column) => sum + column.byteSize, 0);
  }

  /**
   * Joins one prediction. Returns its enriched record, or undefined when it is a duplicate of a
   * prediction already kept (SPEC §3: the first in (object key, record) order wins, whatever its values).
   */
  accept(p: PredictionRecord): EnrichedRecord | undefined {
    this.stats.predictionsRead++;
    const hash = this.seen.hashKey(p.prediction_id);
    if (!this.keepFirst(hash)) return undefined;
    const group = this.groupOf(p.model_name, p.model_version);
    this.collectSegments(p.segment_keys);
    const kind = this.joinKept(hash, group, p.inference_ts, p.y_pred, p.y_true);
    const j = this.joined;
    if (kind === RowKind.invalid) return enriched(p, p.y_true, p.residual, null, null, null);
    if (kind === RowKind.unlabeled) return enriched(p, null, null, null, null, null);
    return enriched(p, j.yTrue, j.yTrue - p.y_pred, j.labelTs, j.delaySeconds, kind === RowKind.fromLabels ? 'labels' : 'inline');
  }

  /**
   * Joins the predictions of a columnar batch in row order, exactly as `accept` would one by one:
   * ids are hashed straight from the batch's UTF-8 arena, strings are interned once per batch
   * through its dictionary codes. Writes each row's kind and label fields into `results`.
   */
  acceptBatch(batch: PredictionBatch, results: JoinResults): void {
    const { strings, ids, idEnds } = batch;
    const groups = new Map<number, number>();
    const keyIdsByCode = new Int32Array(strings.length).fill(UNSEEN);
    const valueIds = new Map<number, number>();
    const j = this.joined;
    for (let row = 0; row < batch.count; row++) {
      this.stats.predictionsRead++;
      const hash = this.seen.hashBytes(ids, row === 0 ? 0 : idEnds[row - 1]!, idEnds[row]!);
      if (!this.keepFirst(hash)) {
        results.kind[row] = RowKind.dropped;
        continue;
      }
      const nameCode = batch.modelName[row]!;
      const versionCode = batch.modelVersion[row]!;
      const groupKey = nameCode * strings.length + versionCode;
      let group = groups.get(groupKey);
      if (group === undefined) groups.set(groupKey, (group = this.groupOf(strings[nameCode]!, strings[versionCode]!)));
      this.pairScratch.length = 0;
      for (let pair = batch.segStart[row]!; pair < batch.segStart[row + 1]!; pair++) {
        const keyCode = batch.segPairs[pair * 2]!;
        let keyId = keyIdsByCode[keyCode]!;
        if (keyId === UNSEEN) keyIdsByCode[keyCode] = keyId = this.keyIdOf(strings[keyCode]!);
        if (keyId < 0) continue;
        const valueCode = batch.segPairs[pair * 2 + 1]!;
        const valueKey = keyId * strings.length + valueCode;
        let valueId = valueIds.get(valueKey);
        if (valueId === undefined) valueIds.set(valueKey, (valueId = this.keyValues[keyId]!.intern(strings[valueCode]!)));
        this.addPair(keyId, valueId);
      }
      const yTrue = batch.nullable[row]! & HAS_Y_TRUE ? batch.yTrue[row]! : null;
      const kind = this.joinKept(hash, group, batch.inferenceTs[row]!, batch.yPred[row]!, yTrue);
      results.kind[row] = kind;
      if (kind === RowKind.fromLabels || kind === RowKind.inline) {
        results.yTrue[row] = j.yTrue;
        results.labelTs[row] = j.labelTs;
        results.delaySeconds[row] = j.delaySeconds;
      }
    }
  }

  /** Dedup (SPEC §3): true for the first prediction of its id; a later one is counted in the kept one's slices. */
  private keepFirst(hash: number): boolean {
    const kept = this.seen.internHashed(hash);
    if (!this.seen.lastWasInserted) {
      // Counted in the kept prediction's slices (SPEC §3), through its combo or row.
      const ref = this.keptRef.get(kept);
      if (ref & 1) this.rowDuplicatePredictions.add(ref >>> 1, 1);
      else this.combos[ref >>> 1]!.accumulator.duplicatePredictionCount++;
      this.stats.duplicatesDropped++;
      return false;
    }
    this.stats.kept++;
    return true;
  }

  /** The label fields of the prediction last joined by `joinKept` (when it returned fromLabels or inline). */
  private readonly joined = { yTrue: NaN, labelTs: NaN, delaySeconds: NaN };

  /**
   * The join of one kept prediction (its id hashed into `seen` as `hash`, its segments in
   * pairScratch): cutoff, label choice, the inline label, flags and accumulation (SPEC §3).
   * Returns the row's kind; the label fields are left in `joined`.
   */
  private joinKept(hash: number, group: number, inferenceTs: number, yPred: number, inlineYTrue: number | null): RowKind {
    const { day } = this.settings;
    let flags = inferenceTs < day.startMicros || inferenceTs >= day.endMicros ? RowFlag.misplaced : 0;
    const cutoff = this.settings.stage === 'final' ? finalCutoffMicros(inferenceTs, this.settings.windowMicros, this.finalClose) : this.settings.asOfMicros;
    const head = this.labels.headFrom(this.seen, hash);

    if (!Number.isFinite(yPred)) {
      // Invalid: kept as written, no label joined, out of the metrics (SPEC §3). Its non-finite
      // labels at or before the cutoff are still counted, as for any prediction.
      this.stats.invalid++;
      let invalidLabels = head >= 0 ? chooseLabel(this.labels, head, cutoff, this.choice).invalidCount : 0;
      if (inlineYTrue !== null && !Number.isFinite(inlineYTrue) && inferenceTs <= cutoff) invalidLabels++;
      this.record(group, flags, 1 + invalidLabels, 0, NaN, yPred, NaN);
      return RowKind.invalid;
    }
    flags |= RowFlag.valid;

    let invalidLabels = 0;
    let duplicateLabels = 0;
    let yTrue: number | null = null;
    let labelTs: number | null = null;
    let kind: RowKind = RowKind.unlabeled;

    if (head >= 0) {
      const choice = chooseLabel(this.labels, head, cutoff, this.choice);
      invalidLabels = choice.invalidCount;
      if (choice.winner >= 0) {
        yTrue = this.labels.yTrue(choice.winner);
        labelTs = this.labels.labelTs(choice.winner);
        kind = RowKind.fromLabels;
        duplicateLabels = choice.usableCount - 1;
      }
    }
    // An inline y_true is a label with label_ts = inference_ts; a dataset label wins over it.
    if (inlineYTrue !== null && inferenceTs <= cutoff) {
      if (!Number.isFinite(inlineYTrue)) invalidLabels++;
      else if (kind === RowKind.unlabeled) {
        yTrue = inlineYTrue;
        labelTs = inferenceTs;
        kind = RowKind.inline;
      }
    }

    if (yTrue === null || labelTs === null) {
      this.record(group, flags, invalidLabels, duplicateLabels, NaN, yPred, NaN);
      return RowKind.unlabeled;
    }

    flags |= RowFlag.labeled;
    if (labelTs < inferenceTs) flags |= RowFlag.negativeDelay;
    const delaySeconds = labelTs > inferenceTs ? (labelTs - inferenceTs) / 1e6 : 0;
    this.record(group, flags, invalidLabels, duplicateLabels, yTrue, yPred, delaySeconds);
    this.stats.labeled++;
    if (kind === RowKind.fromLabels) this.stats.labeledFromLabels++;
    else this.stats.labeledInline++;
    const j = this.joined;
    j.yTrue = yTrue;
    j.labelTs = labelTs;
    j.delaySeconds = delaySeconds;
    return kind;
  }

  /** Accumulates a kept prediction into its combo, or keeps it as a row once combos are full. */
  private record(group: number, flags: number, invalid: number, duplicateLabels: number, yTrue: number, yPred: number, delaySeconds: number): void {
    const pairs = this.pairScratch;
    let combo = this.findCombo(group, pairs);
    if (combo === undefined && this.combos.length < this.maxCombos) {
      combo = this.combos.length;
      this.combos.push({ group, pairs: pairs.slice(), accumulator: new MetricAccumulator(), kept: 0 });
      this.comboChain.push(this.comboHeads.get(this.comboHash) ?? -1);
      this.comboHeads.set(this.comboHash, combo);
    }
    if (combo !== undefined) {
      this.keptRef.push(combo * 2);
      const target = this.combos[combo]!;
      target.kept++;
      accumulateRow(target.accumulator, flags, invalid, 0, duplicateLabels, yTrue, yPred, delaySeconds);
      return;
    }
    this.keptRef.push(this.rowGroup.size * 2 + 1);
    this.rowGroup.push(group);
    this.rowPairStart.push(this.segmentPairs.size);
    for (let i = 0; i < pairs.length; i += 2) {
      this.segmentPairs.push(pairs[i]!);
      this.segmentPairs.push(pairs[i + 1]!);
      this.keyPairCounts[pairs[i]!]!++;
    }
    this.rowFlags.push(flags);
    this.rowInvalid.push(invalid);
    this.rowDuplicatePredictions.push(0);
    this.rowDuplicateLabels.push(duplicateLabels);
    this.rowYTrue.push(yTrue);
    this.rowYPred.push(yPred);
    this.rowDelaySeconds.push(delaySeconds);
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

  private groupOf(modelName: string, modelVersion: string): number {
    // Two-level lookup: no string building per record on the hot path.
    let versions = this.groupIds.get(modelName);
    if (versions === undefined) this.groupIds.set(modelName, (versions = new Map()));
    let group = versions.get(modelVersion);
    if (group === undefined) {
      group = this.groups.length;
      versions.set(modelVersion, group);
      this.groups.push({ modelName, modelVersion });
    }
    return group;
  }

  /** Interns the prediction's slice keys and values into pairScratch, sorted by key id. */
  private collectSegments(segments: Record<string, string>): void {
    this.pairScratch.length = 0;
    for (const key in segments) {
      const keyId = this.keyIdOf(key);
      if (keyId >= 0) this.addPair(keyId, this.keyValues[keyId]!.intern(segments[key]!));
    }
  }

  /** The id of a segment key, interned on first sight; -1 for a key outside --slice-keys. */
  private keyIdOf(key: string): number {
    if (this.allowedKeys !== undefined && !this.allowedKeys.has(key)) return -1;
    let keyId = this.keyIds.get(key);
    if (keyId === undefined) {
      if (this.keyNames.length >= MAX_SEGMENT_KEY_NAMES) {
        throw new UsageError(
          `predictions carry more than ${MAX_SEGMENT_KEY_NAMES} distinct segment key names (the latest: ${JSON.stringify(key.slice(0, 80))}); name the keys to slice on with --slice-keys`,
          { option: '--slice-keys' },
        );
      }
      keyId = this.keyNames.length;
      this.keyIds.set(key, keyId);
      this.keyNames.push(key);
      this.keyValues.push(new StringKeyTable(16));
      this.keyPairCounts.push(0);
    }
    return keyId;
  }

  /** Adds a (key id, value id) pair to pairScratch, keeping it sorted by key id. */
  private addPair(keyId: number, valueId: number): void {
    const pairs = this.pairScratch;
    // Insertion sort by key id: maps are small, and producers usually write keys in one order.
    let at = pairs.length;
    pairs.push(keyId, valueId);
    while (at > 0 && pairs[at - 2]! > keyId) {
      pairs[at] = pairs[at - 2]!;
      pairs[at + 1] = pairs[at - 1]!;
      at -= 2;
    }
    pairs[at] = keyId;
    pairs[at + 1] = valueId;
  }
}
