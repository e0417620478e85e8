/**
 * The probe side of the streaming hash join of one day (SPEC §3): predictions are fed in (object
 * key, record) order; each kept one comes back enriched with its winning label. For the metrics,
 * each kept prediction's scalars go to the ComboStore (`combos.ts`: combos, label-age buckets and
 * hours of SPEC §5.1), merged into slices once the day is complete (`slices.ts`).
 */
import { chooseLabel, finalCutoffMicros, finalReadyAtMicros, newLabelChoice, type DayWindow, type LabelChoice } from './policy.js';
import { type LabelChains, LabelIndex } from './label-index.js';
import { uint32Column } from './columns.js';
import { StringKeyTable } from './key-table.js';
import { RowKind, type EnrichedRecord, type PredictionRecord, type Stage } from './records.js';
import { HAS_Y_TRUE, type JoinResults, type PredictionBatch } from '../workers/batches.js';
import type { StateReader } from '../metrics/state-codec.js';
import { ModelMetricsError, UsageError } from '../errors.js';
import { READ_AHEAD_ROWS, type SharedLabelParts, SharedLabelIndex } from './shared-labels.js';
import { type ComboSettings, ComboStore, MAX_COMBOS } from './combos.js';
import { ageEndMicros, agesWritten, hourOfDay } from './windows.js';

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

/** The metric side's settings of a run: its day, the label ages it writes (up to its labels-through) and hours. */
export function comboSettingsOf(settings: JoinSettings): ComboSettings {
  const labelsThrough = settings.stage === 'final' ? finalReadyAtMicros(settings.day, settings.windowMicros) : settings.asOfMicros;
  return { day: settings.day, labelAgesSeconds: agesWritten(settings.day, labelsThrough, settings.labelAgesSeconds ?? []), hourly: settings.hourly ?? false };
}

/** A guard against producers that put ids into segment key *names*: slicing on each would explode. */
export const MAX_SEGMENT_KEY_NAMES = 1000;

/** The error of a day with more than MAX_SEGMENT_KEY_NAMES key names, `key` the first one past it. */
export function tooManyKeyNames(key: string): UsageError {
  return new UsageError(
    `predictions carry more than ${MAX_SEGMENT_KEY_NAMES} distinct segment key names (the latest: ${JSON.stringify(key.slice(0, 80))}); name the keys to slice on with --slice-keys`,
    { option: '--slice-keys' },
  );
}

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

/** The label fields of a labeled curated record (curatedLabel). */
export interface JoinedLabel {
  yTrue: number;
  labelTs: number;
  delaySeconds: number;
}

/**
 * The curated record's label of one kept prediction (SPEC §3): none for an invalid one, else the
 * winning dataset label at its cutoff, else its own inline y_true when usable. Returns the row's
 * kind; the label fields of a labeled row are left in `out`.
 */
export function curatedLabel(labels: LabelChains, choice: LabelChoice, head: number, cutoff: number, inferenceTs: number, yPred: number, inlineYTrue: number | null, out: JoinedLabel): RowKind {
  // Invalid: kept as written, no label joined, out of the metrics (SPEC §3).
  if (!Number.isFinite(yPred)) return RowKind.invalid;
  let yTrue = NaN;
  let labelTs = NaN;
  let kind: RowKind = RowKind.unlabeled;
  if (head >= 0) {
    chooseLabel(labels, head, cutoff, choice);
    if (choice.winner >= 0) {
      yTrue = labels.yTrue(choice.winner);
      labelTs = labels.labelTs(choice.winner);
      kind = RowKind.fromLabels;
    }
  }
  // An inline y_true is a label with label_ts = inference_ts; a dataset label wins over it.
  if (kind === RowKind.unlabeled && inlineYTrue !== null && inferenceTs <= cutoff && Number.isFinite(inlineYTrue)) {
    yTrue = inlineYTrue;
    labelTs = inferenceTs;
    kind = RowKind.inline;
  }
  if (kind === RowKind.unlabeled) return kind;
  out.yTrue = yTrue;
  out.labelTs = labelTs;
  out.delaySeconds = labelTs > inferenceTs ? (labelTs - inferenceTs) / 1e6 : 0;
  return kind;
}

/** The counts of JoinStats that a joined row's kind decides. */
export type KindCounts = Pick<JoinStats, 'invalid' | 'labeled' | 'labeledFromLabels' | 'labeledInline'>;

/** A join task's counts: its rows' kinds and how many rows it joined. */
export type TaskCounts = KindCounts & { rows: number };

/** Counts one joined row's kind. */
export function countKind(counts: KindCounts, kind: RowKind): void {
  if (kind === RowKind.invalid) counts.invalid++;
  else if (kind === RowKind.fromLabels) {
    counts.labeled++;
    counts.labeledFromLabels++;
  } else if (kind === RowKind.inline) {
    counts.labeled++;
    counts.labeledInline++;
  }
}

/** What a worker's join task needs of the run's settings (join-task.ts), plain data. */
export interface WorkerJoinSettings {
  stage: Stage;
  day: DayWindow;
  asOfMicros: number;
  windowMicros: number;
  /** End of D + label window. */
  finalClose: number;
  /** End of D + A per written label age (LabelMaturity). */
  ageEndsMicros: number[];
  hourly: boolean;
}

let joinTokens = 0;

/** A batch signature not yet mapped to a combo (planBatch); place() answers -1 for an overflow row. */
const UNMAPPED = -2;

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

  /** Identifies this join's windows on the worker threads (join-task.ts). */
  readonly token = ++joinTokens;
  /** Rows the workers' join tasks joined so far (absorbBatch). */
  private workerRows = 0;

  readonly stats: JoinStats = { predictionsRead: 0, kept: 0, duplicatesDropped: 0, invalid: 0, labeled: 0, labeledFromLabels: 0, labeledInline: 0 };

  /**
   * With shared labels (a pool, planBatch): per label id (SharedLabelIndex entry), its kept
   * prediction + 1, 0 while none is kept; the dedup of an id with labels costs no table of its own.
   * Ids without labels dedup in `seen`, their kept predictions in `unlabeledKept` by entry.
   */
  private keptOfLabelId: Int32Array | undefined;
  /** planBatch's label entries of the current READ_AHEAD_ROWS rows. */
  private readonly probed = new Int32Array(READ_AHEAD_ROWS);
  private readonly unlabeledKept = uint32Column();

  /**
   * `labels`: a LabelIndex for `accept` (the main-thread path), or the SharedLabelIndex of a pool
   * for `planBatch`. `expectedPredictions` presizes the dedup table (an estimate; it grows past
   * it); `maxCombos` is lowered only by tests, to exercise the row overflow.
   */
  constructor(
    private readonly settings: JoinSettings,
    private readonly labels: LabelIndex | SharedLabelIndex,
    expectedPredictions = 1024,
    maxCombos = MAX_COMBOS,
  ) {
    // With shared labels, only the ids without labels need the dedup table.
    this.seen = new StringKeyTable(labels instanceof SharedLabelIndex ? Math.max(16, expectedPredictions >>> 3) : expectedPredictions);
    this.finalClose = finalReadyAtMicros(settings.day, settings.windowMicros);
    this.allowedKeys = settings.sliceKeys === undefined ? undefined : new Set(settings.sliceKeys);
    this.metrics = new ComboStore(comboSettingsOf(settings), labels, maxCombos);
  }

  /** Number of predictions kept as rows (not in a combo). */
  get rowCount(): number {
    return this.metrics.rowCount;
  }

  /** Bytes held by the probe's structures, for the memory log line. */
  get byteSize(): number {
    return this.seen.byteSize + this.metrics.byteSize + (this.keptOfLabelId?.byteLength ?? 0) + this.unlabeledKept.byteSize;
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
   * The main thread's share of a batch when a worker joins it (--workers N, join-task.ts): the
   * order-dependent steps only. Dedups in row order (a dropped row's kind is set), places each kept
   * row in its combo (mapped once per batch signature, in the order `accept` would create combos)
   * and writes the combo into `plan` for the worker to join; an overflow row (no combo left) is
   * joined here at once, its kind and label fields written into `results` and `plan` -1.
   */
  planBatch(batch: PredictionBatch, results: JoinResults, plan: Int32Array, heads: Int32Array): void {
    const labels = this.sharedIndex;
    const keptOf = (this.keptOfLabelId ??= new Int32Array(labels.distinctIds));
    const codes = new BatchCodes(batch.strings.length);
    const targets = new Int32Array(batch.signatureRow.length).fill(UNMAPPED);
    const groups = new Int32Array(batch.signatureRow.length);
    const pairs: number[][] = [];
    const metrics = this.metrics;
    const day = this.settings.day;
    const j = this.joined;
    const probed = this.probed;
    for (let row = 0; row < batch.count; row++) {
      // The label entries of the next READ_AHEAD_ROWS rows, looked up together (SharedLabelIndex.entriesOf).
      if (row % READ_AHEAD_ROWS === 0) labels.entriesOf(batch.ids, batch.idEnds, batch.idHash, row, Math.min(batch.count, row + READ_AHEAD_ROWS), probed);
      this.stats.predictionsRead++;
      plan[row] = -1;
      // Dedup (SPEC §3): the first prediction of an id is kept; a later one counts in the kept one's slices.
      const start = row === 0 ? 0 : batch.idEnds[row - 1]!;
      const end = batch.idEnds[row]!;
      const entry = probed[row % READ_AHEAD_ROWS]!;
      let head = -1;
      if (entry >= 0) {
        if (keptOf[entry] !== 0) {
          this.dropDuplicate(keptOf[entry]! - 1, results, row);
          continue;
        }
        keptOf[entry] = this.stats.kept + 1;
        head = labels.headAt(entry);
      } else {
        const index = this.seen.internBytes(batch.ids, start, end, batch.idHash[row]!);
        if (!this.seen.lastWasInserted) {
          this.dropDuplicate(this.unlabeledKept.get(index), results, row);
          continue;
        }
        this.unlabeledKept.push(this.stats.kept);
      }
      this.stats.kept++;
      const inferenceTs = batch.inferenceTs[row]!;
      const hour = hourOfDay(day, inferenceTs);
      const signature = batch.signature[row]!;
      let target = targets[signature]!;
      if (target === UNMAPPED) {
        const group = this.collectBatchRow(batch, row, codes);
        target = metrics.place(group, this.pairScratch, hour);
        targets[signature] = target;
        groups[signature] = group;
        pairs[signature] = this.pairScratch.slice();
      } else if (target >= 0) {
        metrics.placeIn(target, hour);
      } else {
        // An overflow signature stays one: every combo slot is taken, so place answers -1 again.
        metrics.place(groups[signature]!, pairs[signature]!, hour);
      }
      if (target >= 0) {
        plan[row] = target;
        heads[row] = head;
        continue;
      }
      // An overflow row: joined here, with the rows' own replay at the end (combos.ts).
      const yPred = batch.yPred[row]!;
      const inlineYTrue = batch.nullable[row]! & HAS_Y_TRUE ? batch.yTrue[row]! : null;
      const cutoff = this.cutoffOf(inferenceTs);
      metrics.addRow(groups[signature]!, pairs[signature]!, hour, inferenceTs, yPred, inlineYTrue, head, cutoff);
      const kind = curatedLabel(labels, this.choice, head, cutoff, inferenceTs, yPred, inlineYTrue, j);
      countKind(this.stats, kind);
      results.kind[row] = kind;
      if (kind === RowKind.fromLabels || kind === RowKind.inline) {
        results.yTrue[row] = j.yTrue;
        results.labelTs[row] = j.labelTs;
        results.delaySeconds[row] = j.delaySeconds;
      }
    }
  }

  /** A dropped duplicate of the kept prediction `kept` (its index among kept ones), counted in its slices. */
  private dropDuplicate(kept: number, results: JoinResults, row: number): void {
    this.metrics.duplicate(kept);
    this.stats.duplicatesDropped++;
    results.kind[row] = RowKind.dropped;
  }

  /** Adds what a worker's join task sends back of a planned batch (join-task.ts): its rows' counts. */
  absorbBatch(counts: TaskCounts): void {
    this.stats.invalid += counts.invalid;
    this.stats.labeled += counts.labeled;
    this.stats.labeledFromLabels += counts.labeledFromLabels;
    this.stats.labeledInline += counts.labeledInline;
    this.workerRows += counts.rows;
  }

  /**
   * Adds the combo windows and delay counts that the workers accumulated (their flush, once every
   * batch is absorbed); throws E_INTERNAL unless they hold exactly the rows the join tasks joined.
   */
  absorbWindows(parts: ReadonlyArray<{ combos: Int32Array; state: StateReader; delayKeys: Float64Array; delayCounts: Float64Array; rows: number }>): void {
    const rows = parts.reduce((n, part) => n + part.rows, 0);
    if (rows !== this.workerRows) {
      throw new ModelMetricsError('E_INTERNAL', `the worker threads handed over the windows of ${rows} joined predictions, expected ${this.workerRows}; nothing was published; rerun, and if it recurs run with --workers 0 and report it`, { operation: 'join', option: '--workers' });
    }
    for (const part of parts) {
      this.metrics.absorbWindows(part.combos, part.state);
      this.metrics.absorbDelays(part.delayKeys, part.delayCounts);
    }
  }

  /** The shared labels that a worker's join task reads: the join must have been given a SharedLabelIndex (buildLabelIndex with a pool). */
  get sharedLabels(): SharedLabelParts {
    return this.sharedIndex.parts;
  }

  /** The labels of a pooled join (planBatch). */
  private get sharedIndex(): SharedLabelIndex {
    if (!(this.labels instanceof SharedLabelIndex)) throw new ModelMetricsError('E_INTERNAL', 'a pooled join needs the shared labels (buildLabelIndex with a pool)', { operation: 'join' });
    return this.labels;
  }

  /** The settings a worker's join task needs, as plain data. */
  get workerSettings(): WorkerJoinSettings {
    const { stage, day, asOfMicros, windowMicros } = this.settings;
    const combo = this.metrics.settings;
    return { stage, day, asOfMicros, windowMicros, finalClose: this.finalClose, ageEndsMicros: combo.labelAgesSeconds.map((age) => ageEndMicros(day, age)), hourly: combo.hourly };
  }

  /** A kept prediction's own cutoff (SPEC §3). */
  private cutoffOf(inferenceTs: number): number {
    return this.settings.stage === 'final' ? finalCutoffMicros(inferenceTs, this.settings.windowMicros, this.finalClose) : this.settings.asOfMicros;
  }

  /**
   * The group of a kept batch row, and its slice keys and values interned into pairScratch (sorted
   * by key id), through the batch's dictionary codes: each string is interned once per batch.
   */
  private collectBatchRow(batch: PredictionBatch, row: number, codes: BatchCodes): number {
    const { strings } = batch;
    const nameCode = batch.modelName[row]!;
    const versionCode = batch.modelVersion[row]!;
    const groupKey = nameCode * strings.length + versionCode;
    let group = codes.groups.get(groupKey);
    if (group === undefined) codes.groups.set(groupKey, (group = this.groupOf(strings[nameCode]!, strings[versionCode]!)));
    this.pairScratch.length = 0;
    for (let pair = batch.segStart[row]!; pair < batch.segStart[row + 1]!; pair++) {
      const keyCode = batch.segPairs[pair * 2]!;
      let keyId = codes.keyIds[keyCode]!;
      if (keyId === UNSEEN) codes.keyIds[keyCode] = keyId = this.keyIdOf(strings[keyCode]!);
      if (keyId < 0) continue;
      const valueCode = batch.segPairs[pair * 2 + 1]!;
      const valueKey = keyId * strings.length + valueCode;
      let valueId = codes.valueIds.get(valueKey);
      if (valueId === undefined) codes.valueIds.set(valueKey, (valueId = this.keyValues[keyId]!.intern(strings[valueCode]!)));
      this.addPair(keyId, valueId);
    }
    return group;
  }

  /** Dedup (SPEC §3) of `accept`: true for the first prediction of its id; a later one is counted in the kept one's slices. */
  private keepFirst(hash: number): boolean {
    const kept = this.seen.internHashed(hash);
    if (!this.seen.lastWasInserted) {
      // Counted in the kept prediction's slices (SPEC §3), through its combo or row.
      this.metrics.duplicate(kept);
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
   * pairScratch): cutoff, the metrics' scalars (SPEC §5, §5.1, through the ComboStore), then the
   * curated record's label choice and inline label (SPEC §3). Returns the row's kind; the label
   * fields are left in `joined`.
   */
  private joinKept(hash: number, group: number, inferenceTs: number, yPred: number, inlineYTrue: number | null): RowKind {
    const cutoff = this.cutoffOf(inferenceTs);
    if (!(this.labels instanceof LabelIndex)) throw new ModelMetricsError('E_INTERNAL', 'accept needs a LabelIndex (shared labels are joined with planBatch)', { operation: 'join' });
    const head = this.labels.headFrom(this.seen, hash);
    this.metrics.add(group, this.pairScratch, inferenceTs, yPred, inlineYTrue, head, cutoff);
    const kind = curatedLabel(this.labels, this.choice, head, cutoff, inferenceTs, yPred, inlineYTrue, this.joined);
    countKind(this.stats, kind);
    return kind;
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
      if (this.keyNames.length >= MAX_SEGMENT_KEY_NAMES) throw tooManyKeyNames(key);
      keyId = this.keyNames.length;
      this.keyIds.set(key, keyId);
      this.keyNames.push(key);
      this.keyValues.push(new StringKeyTable(16));
    }
    return keyId;
  }

  /** Adds a (key id, value id) pair to pairScratch, keeping it sorted by key id. */
  private addPair(keyId: number, valueId: number): void {
    // Insertion sort by key id: maps are small, and producers usually write keys in one order.
    this.pairScratch.push(keyId, valueId);
    siftPair(this.pairScratch, this.pairScratch.length - 2);
  }
}

/** Moves the (key id, value id) pair at `at` back past every pair of a larger key id (one insertion-sort step). */
export function siftPair(pairs: number[], at: number): void {
  const key = pairs[at]!;
  const value = pairs[at + 1]!;
  while (at > 0 && pairs[at - 2]! > key) {
    pairs[at] = pairs[at - 2]!;
    pairs[at + 1] = pairs[at - 1]!;
    at -= 2;
  }
  pairs[at] = key;
  pairs[at + 1] = value;
}

/** A batch's dictionary codes mapped to the join's ids, filled as rows meet them. */
class BatchCodes {
  readonly groups = new Map<number, number>();
  readonly keyIds: Int32Array;
  readonly valueIds = new Map<number, number>();

  constructor(strings: number) {
    this.keyIds = new Int32Array(strings).fill(UNSEEN);
  }
}
