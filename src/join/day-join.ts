/**
 * The probe side of the streaming hash join of one day (SPEC §3): predictions are fed in (object
 * key, record) order; each kept one comes back enriched with its winning label. For the metrics,
 * each kept prediction's scalars go to the ComboStore (`combos.ts`: combos, label-age buckets and
 * hours of SPEC §5.1), merged into slices once the day is complete (`slices.ts`).
 */
import { chooseLabel, finalCutoffMicros, finalReadyAtMicros, newLabelChoice, type DayWindow } from './policy.js';
import type { LabelIndex } from './label-index.js';
import { StringKeyTable } from './key-table.js';
import type { EnrichedRecord, PredictionRecord, Stage } from './records.js';
import { UsageError } from '../errors.js';
import { ComboStore, MAX_COMBOS } from './combos.js';
import { agesWritten } from './windows.js';

export { MAX_COMBOS } from './combos.js';

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
  /** `--label-ages` in seconds, ascending (SPEC §5.1); those past the run's labels-through are not written. Default none. */
  labelAgesSeconds?: readonly number[];
  /** `--windows` includes PT1H: records per hour of D (SPEC §5.1). Default off. */
  hourly?: boolean;
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
  private readonly allowedKeys: Set<string> | undefined;
  /** The current prediction's (key id, value id) pairs, sorted by key id. */
  private readonly pairScratch: number[] = [];

  /** The metric side (SPEC §5, §5.1): combos, label-age buckets, hours and overflow rows. */
  readonly metrics: ComboStore;

  readonly stats: JoinStats = { predictionsRead: 0, kept: 0, duplicatesDropped: 0, invalid: 0, labeled: 0, labeledFromLabels: 0, labeledInline: 0 };

  /**
   * `expectedPredictions` presizes the dedup table (an estimate; it grows past it); `maxCombos`
   * is lowered only by tests, to exercise the row overflow.
   */
  constructor(
    private readonly settings: JoinSettings,
    private readonly labels: LabelIndex,
    expectedPredictions = 1024,
    maxCombos = MAX_COMBOS,
  ) {
    this.seen = new StringKeyTable(expectedPredictions);
    this.finalClose = finalReadyAtMicros(settings.day, settings.windowMicros);
    this.allowedKeys = settings.sliceKeys === undefined ? undefined : new Set(settings.sliceKeys);
    const labelsThrough = settings.stage === 'final' ? this.finalClose : settings.asOfMicros;
    this.metrics = new ComboStore({ day: settings.day, labelAgesSeconds: agesWritten(settings.day, labelsThrough, settings.labelAgesSeconds ?? []), hourly: settings.hourly ?? false }, labels, maxCombos);
  }

  /** Number of predictions kept as rows (not in a combo). */
  get rowCount(): number {
    return this.metrics.rowCount;
  }

  /** Bytes held by the probe's structures, for the memory log line. */
  get byteSize(): number {
    return this.seen.byteSize + this.metrics.byteSize;
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
      this.metrics.duplicate(kept);
      this.stats.duplicatesDropped++;
      return undefined;
    }
    this.stats.kept++;

    const group = this.groupOf(p.model_name, p.model_version);
    this.collectSegments(p.segment_keys);

    const cutoff = this.settings.stage === 'final' ? finalCutoffMicros(p.inference_ts, this.settings.windowMicros, this.finalClose) : this.settings.asOfMicros;
    const head = this.labels.headFrom(this.seen, hash);
    // The metrics (SPEC §5, §5.1) take the prediction's scalars; the rest of accept() is the curated record.
    this.metrics.add(group, this.pairScratch, p.inference_ts, p.y_pred, p.y_true, head, cutoff);

    if (!Number.isFinite(p.y_pred)) {
      // Invalid: kept as written, no label joined, out of the metrics (SPEC §3).
      this.stats.invalid++;
      return enriched(p, p.y_true, p.residual, null, null, null);
    }

    let yTrue: number | null = null;
    let labelTs: number | null = null;
    let source: EnrichedRecord['label_source'] = null;

    if (head >= 0) {
      const choice = chooseLabel(this.labels, head, cutoff, this.choice);
      if (choice.winner >= 0) {
        yTrue = this.labels.yTrue(choice.winner);
        labelTs = this.labels.labelTs(choice.winner);
        source = 'labels';
      }
    }
    // An inline y_true is a label with label_ts = inference_ts; a dataset label wins over it.
    if (p.y_true !== null && p.inference_ts <= cutoff) {
      if (Number.isFinite(p.y_true) && source === null) {
        yTrue = p.y_true;
        labelTs = p.inference_ts;
        source = 'inline';
      }
    }

    if (yTrue === null || labelTs === null) {
      return enriched(p, null, null, null, null, null);
    }

    const delaySeconds = labelTs > p.inference_ts ? (labelTs - p.inference_ts) / 1e6 : 0;
    this.stats.labeled++;
    if (source === 'labels') this.stats.labeledFromLabels++;
    else this.stats.labeledInline++;
    return enriched(p, yTrue, yTrue - p.y_pred, labelTs, delaySeconds, source);
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
