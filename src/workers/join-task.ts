/**
 * The join of a planned prediction batch on a worker thread (--workers N, SPEC §9): the main
 * thread has deduplicated the batch in (object key, record) order and placed each kept row in its
 * combo, with its label chain head in the shared labels (DayJoin.planBatch); here each such row's
 * chain (SharedLabelIndex) is read, its label states accumulated into its combo's windows by the
 * same maturity rule and sink as on the main thread, and its curated label chosen. Then the batch's curated
 * records are encoded. Each worker keeps its windows across the tasks of a join (by the join's
 * token) and sends them once, serialized, when the join flushes (a task aimed at each thread);
 * they are merged exactly into the run's combos (DayJoin.absorbWindows): counts and exact sums,
 * so which thread added what changes no bit.
 */
import { ComboSink, DelayCounts, WindowedAccumulators } from '../join/combos.js';
import { countKind, curatedLabel, type JoinedLabel, type TaskCounts, type WorkerJoinSettings } from '../join/day-join.js';
import { LabelMaturity } from '../join/maturity.js';
import { finalCutoffMicros, newLabelChoice } from '../join/policy.js';
import { RowKind } from '../join/records.js';
import { READ_AHEAD_ROWS, type SharedLabelParts, SharedLabelIndex } from '../join/shared-labels.js';
import { hourOfDay } from '../join/windows.js';
import { StateWriter } from '../metrics/state-codec.js';
import { type EncodedRecords, HAS_Y_TRUE, type JoinResults, type PredictionBatch } from './batches.js';

/** Join the planned rows of a batch, then encode its curated records. */
export interface JoinTask {
  op: 'join';
  batch: PredictionBatch;
  /** Filled by the main thread for dropped and overflow rows; the worker fills the planned ones. */
  results: JoinResults;
  /** Per row: the combo of a kept row to join here, or -1. */
  plan: Int32Array;
  /** Per row: a planned row's label chain head in the shared labels (-1: none); other rows' entries are not read. */
  heads: Int32Array;
  settings: WorkerJoinSettings;
  labels: SharedLabelParts;
  /** The join (DayJoin.token) whose windows this thread accumulates the rows into. */
  token: number;
}

/** Send and forget this thread's windows of a join. */
export interface FlushTask {
  op: 'flush';
  token: number;
}

/** A thread's windows of a join. */
export interface FlushReply {
  /** The combos whose windows `state` holds, in order. */
  combos: Int32Array;
  state: Uint8Array;
  /** Labeled states counted by delay row key (combos.ts delayRowKey). */
  delayKeys: Float64Array;
  delayCounts: Float64Array;
  /** Rows this thread joined into them. */
  rows: number;
}

/** What a join task sends back. */
export interface JoinReply {
  encoded: EncodedRecords;
  counts: TaskCounts;
}

/** This thread's windows per join token, until flushed. */
const joins = new Map<number, JoinState>();

/** What a thread accumulates for one join. */
class JoinState {
  readonly windows = new Map<number, WindowedAccumulators>();
  readonly delays = new DelayCounts();
  readonly sink = new ComboSink(this.delays);
  rows = 0;
}

/**
 * Hands over this thread's windows of a join and forgets them; with no join left, the shared labels
 * are let go too (their memory is freed once no thread holds them: a backfill's next day builds its own).
 */
export function flushJoin(task: FlushTask): FlushReply {
  const join = joins.get(task.token);
  joins.delete(task.token);
  if (joins.size === 0) cached = undefined;
  const state = new StateWriter();
  const combos = new Int32Array(join?.windows.size ?? 0);
  let at = 0;
  for (const [combo, target] of join?.windows ?? []) {
    combos[at++] = combo;
    target.writeTo(state);
  }
  const delays = (join?.delays ?? new DelayCounts()).take();
  return { combos, state: new Uint8Array(state.bytes()), delayKeys: delays.keys, delayCounts: delays.counts, rows: join?.rows ?? 0 };
}

/**
 * This thread's view of the shared labels a task last carried (by their token) and its maturity
 * rule (by the age ends), kept across tasks; let go in flushJoin once no join is left.
 */
let cached: { token: number; ages: string; labels: SharedLabelIndex; maturity: LabelMaturity } | undefined;

function rulesFor(task: JoinTask): { labels: SharedLabelIndex; maturity: LabelMaturity } {
  const ages = task.settings.ageEndsMicros.join(',');
  if (cached === undefined || cached.token !== task.labels.token || cached.ages !== ages) {
    const labels = new SharedLabelIndex(task.labels);
    cached = { token: task.labels.token, ages, labels, maturity: new LabelMaturity(labels, task.settings.ageEndsMicros) };
  }
  return cached;
}

/** Joins the planned rows of `task` (see the module doc); the caller encodes with the filled results. */
export function joinPlanned(task: JoinTask, encode: (batch: PredictionBatch, results: JoinResults) => EncodedRecords): JoinReply {
  const { batch, results, plan, settings } = task;
  const { labels, maturity } = rulesFor(task);
  let join = joins.get(task.token);
  if (join === undefined) joins.set(task.token, (join = new JoinState()));
  const { windows, sink } = join;
  const counts: TaskCounts = { invalid: 0, labeled: 0, labeledFromLabels: 0, labeledInline: 0, rows: 0 };
  const choice = newLabelChoice();
  const joined: JoinedLabel = { yTrue: NaN, labelTs: NaN, delaySeconds: NaN };
  const final = settings.stage === 'final';
  const { heads } = task;
  for (let row = 0; row < batch.count; row++) {
    if (row % READ_AHEAD_ROWS === 0) labels.touchHeads(heads, plan, row, Math.min(batch.count, row + READ_AHEAD_ROWS));
    const combo = plan[row]!;
    if (combo < 0) continue;
    join.rows++;
    counts.rows++;
    const inferenceTs = batch.inferenceTs[row]!;
    const yPred = batch.yPred[row]!;
    const inlineYTrue = batch.nullable[row]! & HAS_Y_TRUE ? batch.yTrue[row]! : null;
    const cutoff = final ? finalCutoffMicros(inferenceTs, settings.windowMicros, settings.finalClose) : settings.asOfMicros;
    const head = heads[row]!;
    const hour = hourOfDay(settings.day, inferenceTs);
    let target = windows.get(combo);
    if (target === undefined) windows.set(combo, (target = new WindowedAccumulators(maturity.bucketCount, settings.hourly)));
    sink.target = target;
    sink.combo = combo;
    sink.hour = hour;
    maturity.contribute(sink, hour, hour < 0, inferenceTs, yPred, inlineYTrue, head, cutoff);
    const kind = curatedLabel(labels, choice, head, cutoff, inferenceTs, yPred, inlineYTrue, joined);
    countKind(counts, kind);
    results.kind[row] = kind;
    if (kind === RowKind.fromLabels || kind === RowKind.inline) {
      results.yTrue[row] = joined.yTrue;
      results.labelTs[row] = joined.labelTs;
      results.delaySeconds[row] = joined.delaySeconds;
    }
  }
  return { encoded: encode(batch, results), counts };
}
