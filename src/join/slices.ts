/**
 * Turns a day's metric state (day-metrics.ts) into ModelMetrics records (SPEC §5, §5.1): one per model version for the whole
 * version, and one per kept value of each segment key, where per model version and key the
 * `maxSliceValues` values with the most kept predictions keep their own slice (ties by value byte
 * order) and the rest fold into `__other__`. Choosing the kept values needs every count first, so
 * the join accumulates per combo (or keeps rows) and the slices are assembled here: memory is
 * bounded by the number of combos and slices, not by the cardinality of a key.
 *
 * Per slice, in this order: the day's record (label_age_s null), one record per label age written
 * (ascending), then with hourly windows one record per hour of D that has kept predictions. The same
 * top-N/__other__ fold holds for all of them.
 */
import { MetricAccumulator } from '../metrics/accumulator.js';
import type { MetricValues } from '../metrics/formulas.js';
import { codeOfDelayKey, comboOfDelayKey } from './combos.js';
import type { DayMetrics } from './day-metrics.js';
import { type DelayRow, SliceSink, type WindowedAccumulators, addDelayRow, decodeDelayRow } from './combos.js';
import type { Stage } from './records.js';
import { stageSymbol } from './records.js';
import type { DayWindow } from './policy.js';
import { ageEndMicros, hourWindow } from './windows.js';

/** The value that every value outside the top N of a key folds into. */
export const OTHER_VALUE = '__other__';

/** A ModelMetrics record as written to the metrics file. */
export interface ModelMetricsRecord extends MetricValues {
  window_start_ts: number;
  window_end_ts: number;
  stage: 'PRELIMINARY' | 'FINAL';
  model_name: string;
  model_version: string;
  slice_keys: Record<string, string>;
  labels_through_ts: number;
  /** SPEC §5.1: null for the run's own records, else the label age A in seconds. */
  label_age_s: number | null;
}

/** Slice options of SPEC §5. */
export interface SliceSettings {
  stage: Stage;
  day: DayWindow;
  labelsThroughMicros: number;
  maxSliceValues: number;
}

/** A slice of one segment key for one group: value id (or -1 for `__other__`) and its accumulator. */
interface KeySlice {
  valueId: number;
  value: string;
  windows: WindowedAccumulators;
}

function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Per key, per group: counts of kept predictions by value id. Combos contribute their counts; rows
 * (the high-cardinality overflow) go through one Float64Array of (group, value) codes per key and
 * one sort, so even a key with millions of values costs one typed array, not a Map entry per value.
 */
function countValues(metrics: DayMetrics): Array<Map<number, Array<{ valueId: number; count: number }>>> {
  const keyCount = metrics.keyNames.length;
  const valueCounts = metrics.keyValues.map((values) => values.length);
  const fromCombos = Array.from({ length: keyCount }, () => new Map<number, number>());
  for (const combo of metrics.combos) {
    for (let i = 0; i < combo.pairs.length; i += 2) {
      const keyId = combo.pairs[i]!;
      const code = combo.group * valueCounts[keyId]! + combo.pairs[i + 1]!;
      fromCombos[keyId]!.set(code, (fromCombos[keyId]!.get(code) ?? 0) + combo.kept);
    }
  }
  const { rows } = metrics;
  const pairs = rows.pairs;
  const rowPairCounts = new Array<number>(keyCount).fill(0);
  for (let i = 0; i < pairs.length; i += 2) rowPairCounts[pairs[i]!]!++;
  const codes = rowPairCounts.map((count) => new Float64Array(count));
  const filled = new Array<number>(keyCount).fill(0);
  for (let row = 0; row < rows.size; row++) {
    const group = rows.group[row]!;
    for (let i = rows.pairStart(row); i < rows.pairEnd[row]!; i += 2) {
      const keyId = pairs[i]!;
      codes[keyId]![filled[keyId]!++] = group * valueCounts[keyId]! + pairs[i + 1]!;
    }
  }
  return codes.map((keyCodes, keyId) => {
    keyCodes.sort();
    const valueCount = valueCounts[keyId]!;
    const comboCounts = fromCombos[keyId]!;
    const byGroup = new Map<number, Array<{ valueId: number; count: number }>>();
    const emit = (code: number, count: number): void => {
      const group = Math.floor(code / valueCount);
      let list = byGroup.get(group);
      if (list === undefined) byGroup.set(group, (list = []));
      list.push({ valueId: code - group * valueCount, count });
    };
    for (let start = 0; start < keyCodes.length; ) {
      let end = start + 1;
      while (end < keyCodes.length && keyCodes[end] === keyCodes[start]) end++;
      const code = keyCodes[start]!;
      const fromCombo = comboCounts.get(code);
      if (fromCombo !== undefined) comboCounts.delete(code);
      emit(code, end - start + (fromCombo ?? 0));
      start = end;
    }
    for (const [code, count] of comboCounts) emit(code, count);
    return byGroup;
  });
}

/** The top `max` values by count, ties by value byte order; only candidates at the threshold are compared as strings. */
function topValues(candidates: Array<{ valueId: number; count: number }>, max: number, valueOf: (id: number) => string): Set<number> {
  if (candidates.length <= max) return new Set(candidates.map((c) => c.valueId));
  const counts = Float64Array.from(candidates, (c) => c.count).sort();
  const threshold = counts[counts.length - max]!;
  const above = candidates.filter((c) => c.count > threshold);
  const atThreshold = candidates
    .filter((c) => c.count === threshold)
    .map((c) => ({ valueId: c.valueId, value: valueOf(c.valueId) }))
    .sort((a, b) => compareBytes(a.value, b.value));
  const kept = new Set(above.map((c) => c.valueId));
  for (const c of atThreshold) {
    if (kept.size >= max) break;
    kept.add(c.valueId);
  }
  return kept;
}

/**
 * Computes every slice of the day, sorted by model name, version, then whole slice, key and value
 * (see the header for the windows). The in-memory run passes `DayMetrics.of(join)`, a spilled or
 * sharded run the merge of its parts: one path, the same records.
 */
export function computeSlices(metrics: DayMetrics, settings: SliceSettings): ModelMetricsRecord[] {
  const groupCount = metrics.groups.length;
  const keyCount = metrics.keyNames.length;
  const whole = Array.from({ length: groupCount }, () => metrics.newWindows());

  // Per key: value slice lookup by (group * valueCount + valueId), and one __other__ per group.
  const keySlices: Array<Map<number, KeySlice>> = [];
  const otherSlices: Array<Map<number, KeySlice>> = [];
  const counts = countValues(metrics);
  for (let keyId = 0; keyId < keyCount; keyId++) {
    const values = metrics.keyValues[keyId]!;
    const valueCount = values.length;
    const lookup = new Map<number, KeySlice>();
    for (const [group, allCandidates] of counts[keyId]!) {
      // A value spelled like the fold bucket always folds into it: one slice per slice_keys.
      const candidates = allCandidates.filter((c) => values[c.valueId] !== OTHER_VALUE);
      for (const valueId of topValues(candidates, settings.maxSliceValues, (id) => values[id]!)) {
        lookup.set(group * valueCount + valueId, { valueId, value: values[valueId]!, windows: metrics.newWindows() });
      }
    }
    keySlices.push(lookup);
    otherSlices.push(new Map());
  }

  const valueCounts = metrics.keyValues.map((values) => values.length);
  /** The slice of a key's value for a group: its own, or the group's __other__. */
  const sliceOf = (group: number, keyId: number, valueId: number): KeySlice => {
    let slice = keySlices[keyId]!.get(group * valueCounts[keyId]! + valueId);
    if (slice === undefined) {
      const others = otherSlices[keyId]!;
      slice = others.get(group);
      if (slice === undefined) others.set(group, (slice = { valueId: -1, value: OTHER_VALUE, windows: metrics.newWindows() }));
    }
    return slice;
  };
  /** Every slice a (group, pairs) prediction belongs to: the whole version, then one per key. */
  const targetsOf = (group: number, pairs: ArrayLike<number>, start: number, end: number, out: WindowedAccumulators[]): WindowedAccumulators[] => {
    out.length = 0;
    out.push(whole[group]!);
    for (let i = start; i < end; i += 2) out.push(sliceOf(group, pairs[i]!, pairs[i + 1]!).windows);
    return out;
  };

  // Combos first (in creation order, so the result is deterministic), then their delays, then the overflow rows.
  const comboTargets = metrics.combos.map((combo) => {
    const targets = targetsOf(combo.group, combo.pairs, 0, combo.pairs.length, []);
    for (const t of targets) t.merge(combo.windows);
    return targets;
  });
  const delayRow: DelayRow = { key: 0, bucket: 0, sign: 1, hour: -1 };
  const { delays } = metrics;
  for (let at = 0; at < delays.size; at++) {
    const key = delays.keyAt(at);
    addDelayRow(decodeDelayRow(codeOfDelayKey(key), delayRow), delays.countAt(at), comboTargets[comboOfDelayKey(key)]!);
  }
  const { rows } = metrics;
  const sink = new SliceSink();
  const maturity = metrics.rowMaturity();
  for (let row = 0; row < rows.size; row++) {
    targetsOf(rows.group[row]!, rows.pairs, rows.pairStart(row), rows.pairEnd[row]!, sink.targets);
    metrics.replayRow(row, sink, maturity);
  }

  const base = {
    stage: stageSymbol(settings.stage),
  };
  const ages = metrics.settings.labelAgesSeconds;
  /** The records of one slice: the day, its label ages, its hours. */
  const windowRecords = (model: { model_name: string; model_version: string }, sliceKeys: Record<string, string>, windows: WindowedAccumulators): ModelMetricsRecord[] => {
    const day = { ...base, ...model, slice_keys: sliceKeys, window_start_ts: settings.day.startMicros, window_end_ts: settings.day.endMicros };
    const running = new MetricAccumulator();
    const out: ModelMetricsRecord[] = [];
    ages.forEach((age, b) => {
      const bucket = windows.buckets[b];
      if (bucket !== undefined) running.merge(bucket);
      out.push({ ...day, labels_through_ts: ageEndMicros(settings.day, age), label_age_s: age, ...running.finish() });
    });
    const last = windows.buckets[ages.length];
    if (last !== undefined) running.merge(last);
    out.unshift({ ...day, labels_through_ts: settings.labelsThroughMicros, label_age_s: null, ...running.finish() });
    windows.hours?.forEach((acc, hour) => {
      if (acc === undefined || acc.kept === 0) return;
      const window = hourWindow(settings.day, hour);
      out.push({ ...day, window_start_ts: window.startMicros, window_end_ts: window.endMicros, labels_through_ts: settings.labelsThroughMicros, label_age_s: null, ...acc.finish() });
    });
    return out;
  };

  const records: ModelMetricsRecord[] = [];
  const groupOrder = metrics.groups
    .map((g, id) => ({ ...g, id }))
    .sort((a, b) => compareBytes(a.modelName, b.modelName) || compareBytes(a.modelVersion, b.modelVersion));
  const keyOrder = metrics.keyNames.map((name, id) => ({ name, id })).sort((a, b) => compareBytes(a.name, b.name));
  for (const g of groupOrder) {
    const model = { model_name: g.modelName, model_version: g.modelVersion };
    records.push(...windowRecords(model, {}, whole[g.id]!));
    for (const k of keyOrder) {
      const valueCount = metrics.keyValues[k.id]!.length;
      const own = [...keySlices[k.id]!.entries()]
        .filter(([code]) => Math.floor(code / valueCount) === g.id)
        .map(([, slice]) => slice)
        .sort((a, b) => compareBytes(a.value, b.value));
      const other = otherSlices[k.id]!.get(g.id);
      for (const slice of other === undefined ? own : [...own, other]) {
        records.push(...windowRecords(model, { [k.name]: slice.value }, slice.windows));
      }
    }
  }
  return records;
}
