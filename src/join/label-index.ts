/**
 * The labels of a run, indexed by prediction id, in compact columns: a StringKeyTable of the
 * distinct ids, and per label its `label_ts`, `y_true` and the previous label of the same id,
 * in chunked typed arrays (columns.ts) that grow without copying. No JS object or string is kept
 * per label, so 20 million labels cost about 80 bytes each rather than several hundred.
 *
 * A label's index is its sequence number: the order of `add` calls, which the driver makes in
 * (object key, record) order (SPEC §3), so "later in that order" is "larger index".
 */
import { ModelMetricsError } from '../errors.js';
import { type ChunkedColumn, float64Column, uint32Column } from './columns.js';
import { StringKeyTable } from './key-table.js';

/** Most labels one index holds: label indexes are non-negative Int32 values, -1 ends a chain. */
export const MAX_LABELS = 2 ** 31 - 1;

/**
 * What the label rules (policy.ts, maturity.ts) read of a chain of labels: the next label of the
 * same id, and each label's fields. A label's number orders it in (object key, record) order.
 */
export interface LabelChains {
  /** The label before this one in the chain, or -1 at its end. */
  next(label: number): number;
  /** The label's y_true as written (may be NaN or ±Infinity). */
  yTrue(label: number): number;
  /** The label's label_ts in microseconds since the epoch. */
  labelTs(label: number): number;
}

/** Labels by prediction id; chains run from the most recently added label to the first one. */
export class LabelIndex implements LabelChains {
  private readonly ids: StringKeyTable;
  /** Per distinct id (StringKeyTable entry): its latest label + 1. */
  private readonly heads: ChunkedColumn<Uint32Array> = uint32Column();
  /** Per label: the previous label of the same id + 1, 0 at the end of the chain. */
  private readonly previous: ChunkedColumn<Uint32Array> = uint32Column();
  private readonly timestamps: ChunkedColumn<Float64Array> = float64Column();
  private readonly truths: ChunkedColumn<Float64Array> = float64Column();

  /** `expectedIds` presizes the id table's slots (it grows anyway). */
  constructor(expectedIds = 1024) {
    this.ids = new StringKeyTable(expectedIds);
  }

  /** Adds one label; its index (sequence number) is the number of labels added before it. */
  add(predictionId: string, yTrue: number, labelTsMicros: number): void {
    this.addHashed(this.ids.hashKey(predictionId), yTrue, labelTsMicros);
  }

  private addHashed(hash: number, yTrue: number, labelTsMicros: number): void {
    const label = this.timestamps.size;
    if (label >= MAX_LABELS) {
      throw new ModelMetricsError('E_INTERNAL', `LabelIndex is full: ${label} labels, the limit is ${MAX_LABELS} (2^31 - 1); process fewer label partitions per run`, {
        operation: 'LabelIndex.add',
        labels: label,
      });
    }
    const id = this.ids.internHashed(hash);
    if (this.ids.lastWasInserted) {
      this.heads.push(label + 1);
      this.previous.push(0);
    } else {
      this.previous.push(this.heads.get(id));
      this.heads.set(id, label + 1);
    }
    this.timestamps.push(labelTsMicros);
    this.truths.push(yTrue);
  }

  /** Head of the chain of labels for this id (the most recently added; chains descend in index), or -1. */
  head(predictionId: string): number {
    const id = this.ids.find(predictionId);
    return id < 0 ? -1 : this.heads.get(id) - 1;
  }

  /** `head` of the key last passed to `source.hashKey`, which returned `hash` (one hash serves two tables). */
  headFrom(source: StringKeyTable, hash: number): number {
    const id = this.ids.findFrom(source, hash);
    return id < 0 ? -1 : this.heads.get(id) - 1;
  }

  /** The label added before this one for the same id, or -1 at the end of the chain. */
  next(label: number): number {
    return this.previous.get(label) - 1;
  }

  /** The label's y_true as written (may be NaN or ±Infinity; policy.ts decides). */
  yTrue(label: number): number {
    return this.truths.get(label);
  }

  /** The label's label_ts in microseconds since the epoch. */
  labelTs(label: number): number {
    return this.timestamps.get(label);
  }

  /** Number of labels added. */
  get size(): number {
    return this.timestamps.size;
  }

  /** Number of distinct prediction ids among them. */
  get distinctIds(): number {
    return this.ids.size;
  }

  /** Bytes held by the id table and the columns, for the memory budget and logs. */
  get byteSize(): number {
    return this.ids.byteSize + this.heads.byteSize + this.previous.byteSize + this.timestamps.byteSize + this.truths.byteSize;
  }
}
