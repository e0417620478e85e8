/**
 * Turns the rows of a day's join into ModelMetrics records (SPEC §5): one per model version for the
 * whole version, and one per kept value of each segment key, where per model version and key the
 * `maxSliceValues` values with the most kept predictions keep their own slice (ties by value byte
 * order) and the rest fold into `__other__`. Choosing the kept values needs every count first,
 * which is why the join keeps rows instead of accumulating per value as it goes: memory is bounded
 * by the number of slices written, not by the cardinality of a key.
 */
import { MetricAccumulator } from '../metrics/accumulator.js';
import type { MetricValues } from '../metrics/formulas.js';
import { RowFlag, type DayJoin } from './day-join.js';
import type { Stage } from './records.js';
import { stageSymbol } from './records.js';
import type { DayWindow } from './policy.js';

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
  accumulator: MetricAccumulator;
  /** Position among its (group, key)'s slices: 1..N for kept values, N + 1 for __other__ (0 means "key absent"). */
  slot: number;
}

/** Most combos kept; rows of further combos are accumulated into their slices directly. */
const MAX_COMBOS = 65_536;

/** Rows of one model version that fall into the same slice of every key. */
interface Combo {
  accumulator: MetricAccumulator;
  targets: MetricAccumulator[];
}

function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Per key, per group: counts of kept rows by value id. One pass over the rows fills a Float64Array
 * of (group, value) codes per key, and one sort per key turns it into runs — so even a key with
 * millions of values costs one typed array, not a Map entry per value.
 */
function countValues(join: DayJoin): Array<Map<number, Array<{ valueId: number; count: number }>>> {
  const keyCount = join.keyNames.length;
  const codes = join.keyPairCounts.map((n) => new Float64Array(n));
  const filled = new Array<number>(keyCount).fill(0);
  const valueCounts = join.keyValues.map((values) => values.size);
  const pairs = join.segmentPairs;
  const rows = join.rowCount;
  for (let row = 0; row < rows; row++) {
    const end = row + 1 < rows ? join.rowPairStart.get(row + 1) : pairs.size;
    const group = join.rowGroup.get(row);
    for (let i = join.rowPairStart.get(row); i < end; i += 2) {
      const keyId = pairs.get(i);
      codes[keyId]![filled[keyId]!++] = group * valueCounts[keyId]! + pairs.get(i + 1);
    }
  }
  return codes.map((keyCodes, keyId) => {
    keyCodes.sort();
    const valueCount = valueCounts[keyId]!;
    const byGroup = new Map<number, Array<{ valueId: number; count: number }>>();
    for (let start = 0; start < keyCodes.length; ) {
      let end = start + 1;
      while (end < keyCodes.length && keyCodes[end] === keyCodes[start]) end++;
      const code = keyCodes[start]!;
      const group = Math.floor(code / valueCount);
      let list = byGroup.get(group);
      if (list === undefined) byGroup.set(group, (list = []));
      list.push({ valueId: code - group * valueCount, count: end - start });
      start = end;
    }
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

function addRow(join: DayJoin, row: number, acc: MetricAccumulator): void {
  const flags = join.rowFlags.get(row);
  acc.invalidCount += join.rowInvalid.get(row);
  acc.duplicatePredictionCount += join.rowDuplicatePredictions.get(row);
  acc.duplicateLabelCount += join.rowDuplicateLabels.get(row);
  if (flags & RowFlag.misplaced) acc.misplacedCount++;
  if (!(flags & RowFlag.valid)) return;
  if (flags & RowFlag.labeled) {
    if (flags & RowFlag.negativeDelay) acc.negativeDelayCount++;
    acc.addLabeled(join.rowYTrue.get(row), join.rowYPred.get(row), join.rowDelaySeconds.get(row));
  } else {
    acc.addUnlabeled();
  }
}

/** Computes every slice of the day, sorted by model name, version, then whole slice, key and value. */
export function computeSlices(join: DayJoin, settings: SliceSettings): ModelMetricsRecord[] {
  const groupCount = join.groups.length;
  const keyCount = join.keyNames.length;
  const whole = Array.from({ length: groupCount }, () => new MetricAccumulator());

  // Per key: value slice lookup by (group * valueCount + valueId), and one __other__ per group.
  const keySlices: Array<Map<number, KeySlice>> = [];
  const otherSlices: Array<Map<number, KeySlice>> = [];
  const counts = countValues(join);
  for (let keyId = 0; keyId < keyCount; keyId++) {
    const values = join.keyValues[keyId]!;
    const valueCount = values.size;
    const lookup = new Map<number, KeySlice>();
    for (const [group, candidates] of counts[keyId]!) {
      let slot = 0;
      for (const valueId of topValues(candidates, settings.maxSliceValues, (id) => values.keyAt(id))) {
        lookup.set(group * valueCount + valueId, { valueId, value: values.keyAt(valueId), accumulator: new MetricAccumulator(), slot: ++slot });
      }
    }
    keySlices.push(lookup);
    otherSlices.push(new Map());
  }

  // Rows of one model version that fall into the same slice of every key share one accumulator (a
  // "combo"): each row is accumulated once, and each combo is merged into its slices at the end,
  // instead of every row being accumulated once per slice. A combo's id packs each key's slot in
  // base `radix`; where that could exceed 2^53, or past MAX_COMBOS (high-cardinality keys), rows go
  // into their slices directly. Either way the result is the same up to the last bits of the sums.
  const radix = settings.maxSliceValues + 2;
  const radixPowers = Array.from({ length: keyCount }, (_, k) => radix ** k);
  const packable = radix ** keyCount * groupCount < Number.MAX_SAFE_INTEGER;
  const combos = new Map<number, Combo>();
  const targets: MetricAccumulator[] = [];

  const rows = join.rowCount;
  const pairs = join.segmentPairs;
  const valueCounts = join.keyValues.map((values) => values.size);
  for (let row = 0; row < rows; row++) {
    const group = join.rowGroup.get(row);
    targets.length = 0;
    targets.push(whole[group]!);
    let code = group;
    const end = row + 1 < rows ? join.rowPairStart.get(row + 1) : pairs.size;
    for (let i = join.rowPairStart.get(row); i < end; i += 2) {
      const keyId = pairs.get(i);
      const valueId = pairs.get(i + 1);
      let slice = keySlices[keyId]!.get(group * valueCounts[keyId]! + valueId);
      if (slice === undefined) {
        const others = otherSlices[keyId]!;
        slice = others.get(group);
        if (slice === undefined) others.set(group, (slice = { valueId: -1, value: OTHER_VALUE, accumulator: new MetricAccumulator(), slot: settings.maxSliceValues + 1 }));
      }
      targets.push(slice.accumulator);
      code += slice.slot * radixPowers[keyId]! * groupCount;
    }
    if (packable) {
      let combo = combos.get(code);
      if (combo === undefined && combos.size < MAX_COMBOS) combos.set(code, (combo = { accumulator: new MetricAccumulator(), targets: targets.slice() }));
      if (combo !== undefined) {
        addRow(join, row, combo.accumulator);
        continue;
      }
    }
    for (const target of targets) addRow(join, row, target);
  }
  for (const combo of combos.values()) for (const target of combo.targets) target.merge(combo.accumulator);

  const base = {
    window_start_ts: settings.day.startMicros,
    window_end_ts: settings.day.endMicros,
    stage: stageSymbol(settings.stage),
    labels_through_ts: settings.labelsThroughMicros,
  };
  const records: ModelMetricsRecord[] = [];
  const groupOrder = join.groups
    .map((g, id) => ({ ...g, id }))
    .sort((a, b) => compareBytes(a.modelName, b.modelName) || compareBytes(a.modelVersion, b.modelVersion));
  const keyOrder = join.keyNames.map((name, id) => ({ name, id })).sort((a, b) => compareBytes(a.name, b.name));
  for (const g of groupOrder) {
    const model = { model_name: g.modelName, model_version: g.modelVersion };
    records.push({ ...base, ...model, slice_keys: {}, ...whole[g.id]!.finish() });
    for (const k of keyOrder) {
      const valueCount = join.keyValues[k.id]!.size;
      const own = [...keySlices[k.id]!.entries()]
        .filter(([code]) => Math.floor(code / valueCount) === g.id)
        .map(([, slice]) => slice)
        .sort((a, b) => compareBytes(a.value, b.value));
      const other = otherSlices[k.id]!.get(g.id);
      for (const slice of other === undefined ? own : [...own, other]) {
        records.push({ ...base, ...model, slice_keys: { [k.name]: slice.value }, ...slice.accumulator.finish() });
      }
    }
  }
  return records;
}
