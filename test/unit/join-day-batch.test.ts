/**
 * The worker pool's join of columnar batches — DayJoin.planBatch on the main thread, then the
 * worker's joinPlanned against the labels frozen into shared memory, its windows flushed and
 * absorbed — is DayJoin.accept row by row: the same kept rows, enriched records, statistics and
 * metric slices (label ages and hours included), over predictions with duplicates, invalid
 * values, inline labels, misplaced rows, non-ASCII ids, varied segment maps and the combo
 * overflow into rows.
 */
import { describe, expect, it } from 'vitest';
import { DayJoin, type JoinSettings } from '../../src/join/day-join.js';
import { SharedLabelIndex } from '../../src/join/shared-labels.js';
import { StateReader } from '../../src/metrics/state-codec.js';
import { encodeKeptRows } from '../../src/workers/batches.js';
import { flushJoin, joinPlanned } from '../../src/workers/join-task.js';
import { DayMetrics } from '../../src/join/day-metrics.js';
import { LabelIndex } from '../../src/join/label-index.js';
import { dayWindow } from '../../src/join/policy.js';
import { RowKind, type PredictionRecord, type Stage } from '../../src/join/records.js';
import { computeSlices } from '../../src/join/slices.js';
import { seededRandom } from '../../src/demo/generate.js';
import { enrichedRow, joinResults, LabelColumns, PredictionColumns } from '../../src/workers/batches.js';

const DAY = dayWindow('2026-03-02');
const H = 3600 * 1_000_000;
const WINDOW = 7 * 24 * H;

function predictions(n: number, random: () => number): PredictionRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const id = random() < 0.05 ? `dup-${Math.floor(random() * 50)}` : random() < 0.1 ? `ünï-${i}-é` : `p-${i}`;
    const segments: Record<string, string> = {};
    if (random() < 0.8) segments['region'] = `r${Math.floor(random() * 4)}`;
    if (random() < 0.5) segments['device'] = `d${Math.floor(random() * 3)}`;
    if (random() < 0.05) segments['store'] = `s${Math.floor(random() * 40)}`;
    const inline = random() < 0.1 ? (random() < 0.1 ? Number.NaN : random() * 10) : null;
    return {
      prediction_id: id,
      model_name: random() < 0.5 ? 'eta' : 'price',
      model_version: `v${Math.floor(random() * 3)}`,
      feature_set_version: 'fs',
      y_pred: random() < 0.02 ? Number.POSITIVE_INFINITY : random() * 10,
      y_true: inline,
      residual: inline === null ? null : 0.5,
      inference_ts: DAY.startMicros + Math.floor(random() * 26 * H) - H,
      segment_keys: segments,
    };
  });
}

function setup(stage: Stage, random: () => number, ids: readonly string[], maxCombos: number, shared: boolean) {
  const index = new LabelIndex();
  const sharedIndex = new SharedLabelIndex(4);
  const labels = new LabelColumns(ids.length * 2);
  const raw: Array<{ prediction_id: string; y_true: number; label_ts: number }> = [];
  for (const id of ids) {
    const count = random() < 0.7 ? 1 + Math.floor(random() * 2) : 0;
    for (let k = 0; k < count; k++) raw.push({ prediction_id: id, y_true: random() < 0.02 ? Number.NaN : random() * 10, label_ts: DAY.startMicros + Math.floor(random() * 9 * 24 * H) });
  }
  labels.add(raw);
  const batch = labels.take();
  for (let row = 0; row < batch.count; row++) {
    if (shared) sharedIndex.add(batch.ids, row === 0 ? 0 : batch.idEnds[row - 1]!, batch.idEnds[row]!, batch.idHash[row]!, batch.yTrue[row]!, batch.labelTs[row]!);
    else index.add(raw[row]!.prediction_id, raw[row]!.y_true, raw[row]!.label_ts);
  }
  const settings: JoinSettings = { stage, day: DAY, asOfMicros: DAY.endMicros + 12 * H, windowMicros: WINDOW, sliceKeys: undefined, labelAgesSeconds: [3600, 86_400, 3 * 86_400], hourly: true };
  return new DayJoin(settings, shared ? sharedIndex : index, 1024, maxCombos);
}

describe('DayJoin.planBatch with the workers\' joinPlanned', () => {
  it.each([
    ['final', 2048],
    ['preliminary', 2048],
    ['final', 5],
  ] as const)('%s stage, %i combos at most: the same rows, records, stats and slices as accept', (stage, maxCombos) => {
    const input = predictions(3000, seededRandom(7));
    const ids = [...new Set(input.map((p) => p.prediction_id))];
    const one = setup(stage, seededRandom(11), ids, maxCombos, false);
    const batched = setup(stage, seededRandom(11), ids, maxCombos, true);
    const expected = input.map((p) => one.accept(p));
    const actual: unknown[] = [];
    for (let from = 0; from < input.length; from += 700) {
      const rows = input.slice(from, from + 700);
      const columns = new PredictionColumns(rows.length);
      columns.add(rows);
      const batch = columns.take();
      const results = joinResults(batch.count);
      const plan = new Int32Array(batch.count);
      const heads = new Int32Array(batch.count);
      batched.planBatch(batch, results, plan, heads);
      const reply = joinPlanned({ op: 'join', batch, results, plan, heads, settings: batched.workerSettings, labels: batched.sharedLabels, token: batched.token }, encodeKeptRows);
      batched.absorbBatch(reply.counts);
      rows.forEach((p, row) => actual.push(results.kind[row] === RowKind.dropped ? undefined : enrichedRow(batch, results, row, p.prediction_id)));
    }
    const flushed = flushJoin({ op: 'flush', token: batched.token });
    batched.absorbWindows([{ ...flushed, state: new StateReader(Buffer.from(flushed.state)) }]);
    expect(actual).toEqual(expected);
    expect(batched.stats).toEqual(one.stats);
    const slices = (join: DayJoin) => computeSlices(DayMetrics.of(join), { stage, day: DAY, labelsThroughMicros: DAY.endMicros + WINDOW, maxSliceValues: 3 });
    expect(slices(batched)).toEqual(slices(one));
    expect(batched.rowCount).toBe(one.rowCount);
  });
});
