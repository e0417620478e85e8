/**
 * DayMetrics (SPEC §5.1, §9): a dirty day split by prediction-id hash into parts, each joined with
 * its own LabelIndex and DayJoin, merged in several orders and through toBytes/fromBytes, gives
 * computeSlices records bit-identical to one in-memory pass — with combos, with the overflow rows
 * (maxCombos lowered, so parts split combos and rows differently), label ages and hours; and
 * every kind of damage to the bytes is refused with E_CORRUPT_OBJECT naming the URI.
 */
import { describe, expect, it } from 'vitest';
import { metricsType } from '../../src/avro/schemas.js';
import { CorruptObjectError, ModelMetricsError, UsageError } from '../../src/errors.js';
import { DayJoin, MAX_SEGMENT_KEY_NAMES } from '../../src/join/day-join.js';
import { DAY_METRICS_FORMAT_VERSION, DayMetrics } from '../../src/join/day-metrics.js';
import { LabelIndex } from '../../src/join/label-index.js';
import { finalReadyAtMicros } from '../../src/join/policy.js';
import type { LabelRecord, PredictionRecord, Stage } from '../../src/join/records.js';
import { type ModelMetricsRecord, computeSlices } from '../../src/join/slices.js';
import { StringBucketer } from '../../src/scale/bucket-hash.js';
import { DAY, dirtyDay } from '../helpers/dirty-day.js';

const S = 1_000_000;
const H = 3600 * S;
const WINDOW = 7 * 24 * H;
const AGES = [3600, 6 * 3600, 86_400, 2 * 86_400];
const URI = 's3://bucket/curated/_staging/stage=final/dt=2026-03-02/shards-abc/j1/metrics.state';

interface Variant {
  stage: Stage;
  asOf?: number;
  ages: readonly number[];
  hourly: boolean;
  maxCombos: number | undefined;
}

function labelsThroughOf(v: Variant): number {
  return v.stage === 'final' ? finalReadyAtMicros(DAY, WINDOW) : v.asOf!;
}

/** One join over these records, as daily.ts runs it: labels past labels-through are not indexed. */
function joinOf(predictions: readonly PredictionRecord[], labels: readonly LabelRecord[], v: Variant): DayMetrics {
  const through = labelsThroughOf(v);
  const index = new LabelIndex();
  for (const l of labels) if (l.label_ts <= through) index.add(l.prediction_id, l.y_true, l.label_ts);
  const join = new DayJoin({ stage: v.stage, day: DAY, asOfMicros: v.asOf ?? through, windowMicros: WINDOW, sliceKeys: undefined, labelAgesSeconds: v.ages, hourly: v.hourly }, index, 1024, v.maxCombos);
  for (const p of predictions) join.accept(p);
  return DayMetrics.of(join);
}

function slicesOf(metrics: DayMetrics, v: Variant): ModelMetricsRecord[] {
  return computeSlices(metrics, { stage: v.stage, day: DAY, labelsThroughMicros: labelsThroughOf(v), maxSliceValues: 4 });
}

/** The metrics file's record bytes, one hex string per record. */
function encoded(records: readonly ModelMetricsRecord[]): string[] {
  return records.map((r) => metricsType.toBuffer(r).toString('hex'));
}

function split(day: { predictions: PredictionRecord[]; labels: LabelRecord[] }, parts: number, v: Variant): DayMetrics[] {
  // The spill's and the shards' own bucket hash: parts over disjoint prediction ids, each in input order.
  const bucketer = new StringBucketer(parts, 0);
  return Array.from({ length: parts }, (_, part) =>
    joinOf(
      day.predictions.filter((p) => bucketer.of(p.prediction_id) === part),
      day.labels.filter((l) => bucketer.of(l.prediction_id) === part),
      v,
    ),
  );
}

function mergeAll(parts: readonly DayMetrics[], order: readonly number[]): DayMetrics {
  const merged = DayMetrics.empty(parts[0]!.settings);
  for (const i of order) merged.merge(parts[i]!);
  return merged;
}

/** A merge tree: pairs, then pairs of pairs. */
function mergeTree(parts: readonly DayMetrics[]): DayMetrics {
  let level = parts.map((p) => mergeAll([p], [0]));
  while (level.length > 1) {
    const next: DayMetrics[] = [];
    for (let i = 0; i < level.length; i += 2) {
      if (i + 1 < level.length) level[i]!.merge(level[i + 1]!);
      next.push(level[i]!);
    }
    level = next;
  }
  return level[0]!;
}

const VARIANTS: Array<[string, Variant]> = [
  ['final, label ages and hours, combos only', { stage: 'final', ages: AGES, hourly: true, maxCombos: undefined }],
  ['final, label ages and hours, combos then overflow rows', { stage: 'final', ages: AGES, hourly: true, maxCombos: 9 }],
  ['final, overflow rows only', { stage: 'final', ages: AGES, hourly: false, maxCombos: 0 }],
  ['preliminary mid-window, hours, overflow rows', { stage: 'preliminary', asOf: DAY.endMicros + 30 * H, ages: AGES, hourly: true, maxCombos: 5 }],
];

describe('DayMetrics: parts over disjoint prediction ids merge to the one-pass metrics (SPEC §9)', () => {
  const day = dirtyDay(23, 3000, undefined, ['eta', 'price', 'churn']);

  it('the generated day has every case the merge must preserve', () => {
    const ids = day.predictions.map((p) => p.prediction_id);
    expect(new Set(ids).size).toBeLessThan(ids.length); // duplicate predictions
    expect(day.predictions.some((p) => p.y_true !== null)).toBe(true); // inline labels
    expect(day.predictions.some((p) => Number.isNaN(p.y_pred))).toBe(true); // invalid predictions
    expect(day.predictions.some((p) => p.inference_ts < DAY.startMicros || p.inference_ts >= DAY.endMicros)).toBe(true); // misplaced
    const ties = new Set<string>();
    const seen = new Set<string>();
    for (const l of day.labels) {
      const key = `${l.prediction_id}@${l.label_ts}`;
      if (seen.has(key)) ties.add(l.prediction_id);
      seen.add(key);
    }
    expect(ties.size).toBeGreaterThan(0); // label_ts ties
    expect(new Set(day.predictions.map((p) => p.model_name)).size).toBe(3);
  });

  it.each(VARIANTS)('%s: 1, 2, 3 and 7 parts, any merge order, through bytes', (_name, v) => {
    const single = joinOf(day.predictions, day.labels, v);
    const expected = encoded(slicesOf(single, v));
    expect(expected.length).toBeGreaterThan(50);
    if (v.maxCombos !== undefined) expect(single.rows.size).toBeGreaterThan(0);
    // Through bytes, the one-pass state is the same state.
    expect(encoded(slicesOf(DayMetrics.fromBytes(single.toBytes(), URI), v))).toEqual(expected);
    for (const count of [1, 2, 3, 7]) {
      const parts = split(day, count, v);
      const forward = parts.map((_, i) => i);
      const orders = [forward, [...forward].reverse(), forward.map((_, i) => (i + 1) % count)];
      for (const order of orders) {
        const merged = mergeAll(parts, order);
        expect(encoded(slicesOf(merged, v)), `${count} parts, order ${order.join(',')}`).toEqual(expected);
        expect(merged.stats).toEqual(single.stats);
      }
      expect(encoded(slicesOf(mergeTree(parts), v)), `${count} parts, merge tree`).toEqual(expected);
      // Each part through toBytes/fromBytes (a join pod to the commit pod), and the merged state too.
      const shipped = parts.map((p) => DayMetrics.fromBytes(p.toBytes(), URI));
      const viaBytes = mergeAll(shipped, forward);
      expect(encoded(slicesOf(viaBytes, v)), `${count} parts through bytes`).toEqual(expected);
      expect(encoded(slicesOf(DayMetrics.fromBytes(viaBytes.toBytes(), URI), v))).toEqual(expected);
    }
  });

  it('bytes are exact: read back and written again, the same bytes', () => {
    const v = VARIANTS[1]![1];
    for (const part of [...split(day, 3, v), joinOf(day.predictions, day.labels, v)]) {
      const bytes = part.toBytes();
      expect(DayMetrics.fromBytes(bytes, URI).toBytes().equals(bytes)).toBe(true);
    }
  });

  it('an empty part (no predictions) changes nothing', () => {
    const v = VARIANTS[1]![1];
    const single = joinOf(day.predictions, day.labels, v);
    const empty = joinOf([], day.labels, v);
    const merged = mergeAll([empty, single, DayMetrics.fromBytes(DayMetrics.empty(single.settings).toBytes(), URI)], [0, 1, 2]);
    expect(encoded(slicesOf(merged, v))).toEqual(encoded(slicesOf(single, v)));
  });

  it('refuses to merge parts of different runs', () => {
    const a = joinOf(day.predictions.slice(0, 100), [], VARIANTS[0]![1]);
    const b = joinOf(day.predictions.slice(100, 200), [], VARIANTS[2]![1]);
    expect(() => a.merge(b)).toThrow(ModelMetricsError);
    expect(() => a.merge(b)).toThrow(/parts of different runs/);
  });

  it('holds the segment key name guard of one pass across parts', () => {
    const v = VARIANTS[0]![1];
    const wide = (from: number): PredictionRecord[] =>
      Array.from({ length: 600 }, (_, i) => ({ ...day.predictions[0]!, prediction_id: `w${from + i}`, segment_keys: { [`k${from + i}`]: 'x' } }));
    const a = joinOf(wide(0), [], v);
    const b = joinOf(wide(600), [], v);
    expect(MAX_SEGMENT_KEY_NAMES).toBeLessThan(1200);
    expect(() => a.merge(b)).toThrow(UsageError);
  });
});

describe('DayMetrics.fromBytes refuses damaged bytes with E_CORRUPT_OBJECT naming the URI', () => {
  const day = dirtyDay(29, 400, undefined, ['eta', 'price']);
  const bytes = joinOf(day.predictions, day.labels, { stage: 'final', ages: AGES, hourly: true, maxCombos: 3 }).toBytes();

  const cases: Array<[string, () => Buffer, RegExp]> = [
    ['empty', () => Buffer.alloc(0), /expected the magic/],
    ['another file', () => Buffer.from('Obj\x01 not a state at all, but long enough to have a digest'), /expected the magic/],
    ['another format version', () => {
      const b = Buffer.from(bytes);
      b.writeUInt32LE(DAY_METRICS_FORMAT_VERSION + 1, 8);
      return b;
    }, /format version 2, this job reads version 1/],
    ['one flipped bit in the body', () => {
      const b = Buffer.from(bytes);
      b[Math.floor(b.length / 2)]! ^= 0x10;
      return b;
    }, /sha256 .* does not match/],
    ['a damaged digest', () => {
      const b = Buffer.from(bytes);
      b[b.length - 1]! ^= 0x01;
      return b;
    }, /sha256 .* does not match/],
    ['truncated', () => bytes.subarray(0, bytes.length - 100), /sha256 .* does not match/],
    ['extra bytes', () => Buffer.concat([bytes, Buffer.alloc(8)]), /sha256 .* does not match/],
  ];

  it.each(cases)('%s', (_name, damage, message) => {
    let caught: unknown;
    try {
      DayMetrics.fromBytes(damage(), URI);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CorruptObjectError);
    expect((caught as CorruptObjectError).code).toBe('E_CORRUPT_OBJECT');
    expect((caught as CorruptObjectError).message).toContain(URI);
    expect((caught as CorruptObjectError).message).toMatch(message);
    expect((caught as CorruptObjectError).context.uri).toBe(URI);
  });

  it('a structurally wrong body with a valid digest is refused too (a state written by a buggy writer)', async () => {
    const { createHash } = await import('node:crypto');
    const body = Buffer.from(bytes.subarray(0, bytes.length - 32));
    // Cut the body short and re-sign it: the reader finds it truncated, not the digest.
    const cut = body.subarray(0, body.length - 40);
    const resigned = Buffer.concat([cut, createHash('sha256').update(cut).digest()]);
    expect(() => DayMetrics.fromBytes(resigned, URI)).toThrow(CorruptObjectError);
    expect(() => DayMetrics.fromBytes(resigned, URI)).toThrow(/truncated|out of range|do not cover|does not fit/);
  });
});
