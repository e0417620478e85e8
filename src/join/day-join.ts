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
import type { EnrichedRecord, PredictionRecord, Stage } from './records.js';
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
  private readonly comboIds = new Map<string, number>();
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
    const kept = this.seen.internHashed(hash);
    if (!this.seen.lastWasInserted) {
      // Counted in the kept prediction's slices (SPEC §3), through its combo or row.
      const ref = this.keptRef.get(kept);
      if (ref & 1) this.rowDuplicatePredictions.add(ref >>> 1, 1);
      else this.combos[ref >>> 1]!.accumulator.duplicatePredictionCount++;
      this.stats.duplicatesDropped++;
      return undefined;
    }
    this.stats.kept++;

    const { day } = this.settings;
    let flags = p.inference_ts < day.startMicros || p.inference_ts >= day.endMicros ? RowFlag.misplaced : 0;
    const group = this.groupOf(p.model_name, p.model_version);
    this.collectSegments(p.segment_keys);

    const cutoff = this.settings.stage === 'final' ? finalCutoffMicros(p.inference_ts, this.settings.windowMicros, this.finalClose) : this.settings.asOfMicros;
    const head = this.labels.headFrom(this.seen, hash);

    if (!Number.isFinite(p.y_pred)) {
      // Invalid: kept as written, no label joined, out of the metrics (SPEC §3). Its non-finite
      // labels at or before the cutoff are still counted, as for any prediction.
      this.stats.invalid++;
      let invalidLabels = head >= 0 ? chooseLabel(this.labels, head, cutoff, this.choice).invalidCount : 0;
      if (p.y_true !== null && !Number.isFinite(p.y_true) && p.inference_ts <= cutoff) invalidLabels++;
      this.record(group, flags, 1 + invalidLabels, 0, NaN, p.y_pred, NaN);
      return enriched(p, p.y_true, p.residual, null, null, null);
    }
    flags |= RowFlag.valid;

    let invalidLabels = 0;
    let duplicateLabels = 0;
    let yTrue: number | null = null;
    let labelTs: number | null = null;
    let source: EnrichedRecord['label_source'] = null;

    if (head >= 0) {
      const choice = chooseLabel(this.labels, head, cutoff, this.choice);
      invalidLabels = choice.invalidCount;
      if (choice.winner >= 0) {
        yTrue = this.labels.yTrue(choice.winner);
        labelTs = this.labels.labelTs(choice.winner);
        source = 'labels';
        duplicateLabels = choice.usableCount - 1;
      }
    }
    // An inline y_true is a label with label_ts = inference_ts; a dataset label wins over it.
    if (p.y_true !== null && p.inference_ts <= cutoff) {
      if (!Number.isFinite(p.y_true)) invalidLabels++;
      else if (source === null) {
        yTrue = p.y_true;
        labelTs = p.inference_ts;
        source = 'inline';
      }
    }

    if (yTrue === null || labelTs === null) {
      this.record(group, flags, invalidLabels, duplicateLabels, NaN, p.y_pred, NaN);
      return enriched(p, null, null, null, null, null);
    }

    flags |= RowFlag.labeled;
    if (labelTs < p.inference_ts) flags |= RowFlag.negativeDelay;
    const delaySeconds = labelTs > p.inference_ts ? (labelTs - p.inference_ts) / 1e6 : 0;
    this.record(group, flags, invalidLabels, duplicateLabels, yTrue, p.y_pred, delaySeconds);
    this.stats.labeled++;
    if (source === 'labels') this.stats.labeledFromLabels++;
    else this.stats.labeledInline++;
    return enriched(p, yTrue, yTrue - p.y_pred, labelTs, delaySeconds, source);
  }

  /** Accumulates a kept prediction into its combo, or keeps it as a row once combos are full. */
  private record(group: number, flags: number, invalid: number, duplicateLabels: number, yTrue: number, yPred: number, delaySeconds: number): void {
    const pairs = this.pairScratch;
    let id = String(group);
    for (let i = 0; i < pairs.length; i += 2) id += `,${pairs[i]}:${pairs[i + 1]}`;
    let combo = this.comboIds.get(id);
    if (combo === undefined && this.combos.length < this.maxCombos) {
      combo = this.combos.length;
      this.comboIds.set(id, combo);
      this.combos.push({ group, pairs: pairs.slice(), accumulator: new MetricAccumulator(), kept: 0 });
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
    const pairs = this.pairScratch;
    pairs.length = 0;
    for (const key in segments) {
      if (this.allowedKeys !== undefined && !this.allowedKeys.has(key)) continue;
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
      const valueId = this.keyValues[keyId]!.intern(segments[key]!);
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
}
