/**
 * The probe side of the streaming hash join of one day (SPEC §3): predictions are fed in (object
 * key, record) order; each kept one comes back enriched with its winning label, and what the
 * metrics need is kept in compact columns (about 50 bytes plus 8 per segment value a prediction)
 * so that slices can be chosen exactly once the day is complete (see `slices.ts`).
 */
import { chooseLabel, newLabelChoice, type DayWindow } from './policy.js';
import type { LabelIndex } from './label-index.js';
import { StringKeyTable } from './key-table.js';
import { float64Column, uint32Column, uint8Column } from './columns.js';
import type { EnrichedRecord, PredictionRecord, Stage } from './records.js';
import { UsageError } from '../errors.js';

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
    featureset_version: p.featureset_version,
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
  /** Dedup of prediction ids; entry index = row index of the kept prediction. */
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
  /** Per key id: how many kept predictions carry the key. */
  readonly keyPairCounts: number[] = [];
  private readonly allowedKeys: Set<string> | undefined;

  // One entry per kept prediction (row).
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

  /** `expectedPredictions` presizes the dedup table (an estimate; it grows past it). */
  constructor(
    private readonly settings: JoinSettings,
    private readonly labels: LabelIndex,
    expectedPredictions = 1024,
  ) {
    this.seen = new StringKeyTable(expectedPredictions);
    this.finalClose = settings.day.endMicros + settings.windowMicros;
    this.allowedKeys = settings.sliceKeys === undefined ? undefined : new Set(settings.sliceKeys);
  }

  /** Number of kept predictions so far. */
  get rowCount(): number {
    return this.rowGroup.size;
  }

  /** Bytes held by the probe's structures, for the memory log line. */
  get byteSize(): number {
    const columns = [this.rowGroup, this.rowFlags, this.rowInvalid, this.rowDuplicatePredictions, this.rowDuplicateLabels, this.rowYTrue, this.rowYPred, this.rowDelaySeconds, this.rowPairStart, this.segmentPairs];
    return this.seen.byteSize + columns.reduce((sum, column) => sum + column.byteSize, 0);
  }

  /**
   * Joins one prediction. Returns its enriched record, or undefined when it is a duplicate of a
   * prediction already kept (SPEC §3: the first in (object key, record) order wins, whatever its values).
   */
  accept(p: PredictionRecord): EnrichedRecord | undefined {
    this.stats.predictionsRead++;
    const hash = this.seen.hashKey(p.prediction_id);
    const row = this.seen.internHashed(hash);
    if (!this.seen.lastWasInserted) {
      this.rowDuplicatePredictions.add(row, 1);
      this.stats.duplicatesDropped++;
      return undefined;
    }
    this.stats.kept++;

    const { day } = this.settings;
    let flags = p.inference_ts < day.startMicros || p.inference_ts >= day.endMicros ? RowFlag.misplaced : 0;
    this.rowGroup.push(this.groupOf(p.model_name, p.model_version));
    this.pushSegments(p.segment_keys);

    if (!Number.isFinite(p.y_pred)) {
      // Invalid: kept as written, no label joined, out of the metrics (SPEC §3).
      this.stats.invalid++;
      this.pushRow(flags, 1, 0, NaN, p.y_pred, NaN);
      return enriched(p, p.y_true, p.residual, null, null, null);
    }
    flags |= RowFlag.valid;

    // Final: inference_ts + window, capped at the window's close for the day (end of D + window), so
    // that a misplaced prediction stamped after D cannot make a final depend on when it ran.
    const cutoff = this.settings.stage === 'final' ? Math.min(p.inference_ts + this.settings.windowMicros, this.finalClose) : this.settings.asOfMicros;
    let invalidLabels = 0;
    let duplicateLabels = 0;
    let yTrue: number | null = null;
    let labelTs: number | null = null;
    let source: EnrichedRecord['label_source'] = null;

    const head = this.labels.headFrom(this.seen, hash);
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
      this.pushRow(flags, invalidLabels, duplicateLabels, NaN, p.y_pred, NaN);
      return enriched(p, null, null, null, null, null);
    }

    flags |= RowFlag.labeled;
    if (labelTs < p.inference_ts) flags |= RowFlag.negativeDelay;
    const delaySeconds = labelTs > p.inference_ts ? (labelTs - p.inference_ts) / 1e6 : 0;
    this.pushRow(flags, invalidLabels, duplicateLabels, yTrue, p.y_pred, delaySeconds);
    this.stats.labeled++;
    if (source === 'labels') this.stats.labeledFromLabels++;
    else this.stats.labeledInline++;
    return enriched(p, yTrue, yTrue - p.y_pred, labelTs, delaySeconds, source);
  }

  private pushRow(flags: number, invalid: number, duplicateLabels: number, yTrue: number, yPred: number, delaySeconds: number): void {
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

  private pushSegments(segments: Record<string, string>): void {
    this.rowPairStart.push(this.segmentPairs.size);
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
      this.keyPairCounts[keyId]!++;
      this.segmentPairs.push(keyId);
      this.segmentPairs.push(this.keyValues[keyId]!.intern(segments[key]!));
    }
  }
}
