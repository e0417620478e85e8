/**
 * The labels of a run in shared memory (SPEC §9 --workers): built by the main thread in (object key,
 * record) order, straight from the columnar label batches, into flat arrays on SharedArrayBuffers,
 * so the worker threads join predictions against the very same labels without a copy per thread
 * (every join task carries the same shared arrays). Label numbers, chains and the tie rule are
 * those of LabelIndex (the main-thread path's), so every rule (policy.ts, maturity.ts) gives the
 * same answer on either.
 *
 * Layout: per distinct id its hash, the offset and byte length of its key in one byte arena, and
 * its latest label + 1; per label the previous label of the same id + 1 (0 ends the chain), its
 * label_ts and y_true. Lookup: open addressing over a power-of-two slot array at most half full; a
 * slot holds entry + 1 in its low bits and the hash's high bits above them (as StringKeyTable), so
 * a probe that meets another key mostly skips it without reading that key's entry. Arrays double
 * when full (a copy, amortized); the batches' id hashes (hashUtf8) are the table's hashes.
 */
import { ModelMetricsError } from '../errors.js';
import { MAX_LABELS, type LabelLookup } from './label-index.js';
import type { StringKeyTable } from './key-table.js';

/** The shared arrays of the index, as a task message carries them (structured clone shares SharedArrayBuffers). */
export interface SharedLabelParts {
  slots: Int32Array;
  hashes: Int32Array;
  /** Byte offset of each id in `keys`. */
  offsets: Float64Array;
  lengths: Int32Array;
  keys: Uint8Array;
  /** Per distinct id: its latest label + 1. */
  heads: Uint32Array;
  /** Per label: the previous label of the same id + 1, 0 at the end of the chain. */
  previous: Uint32Array;
  timestamps: Float64Array;
  truths: Float64Array;
  /** Identifies the index: a worker rebuilds its view only when it changes. */
  token: number;
}

let indexes = 0;

type Column = Int32Array | Uint32Array | Float64Array | Uint8Array;

/** A typed array of `length` elements like `like`, on a SharedArrayBuffer, holding `like`'s values. */
function sharedLike<T extends Column>(like: T, length: number): T {
  const ctor = like.constructor as { new (buffer: SharedArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number };
  const grown = new ctor(new SharedArrayBuffer(Math.max(1, length) * ctor.BYTES_PER_ELEMENT), 0, length);
  grown.set(like.subarray(0, Math.min(like.length, length)) as never);
  return grown;
}

function shared<T extends Column>(ctor: { new (length: number): T }, length: number): T {
  return sharedLike(new ctor(0), length);
}

/** Labels by prediction id in shared memory; see the module doc. */
export class SharedLabelIndex implements LabelLookup {
  private slots: Int32Array;
  private mask: number;
  private hashes: Int32Array;
  private offsets: Float64Array;
  private lengths: Int32Array;
  private keys: Uint8Array;
  private heads: Uint32Array;
  private previous: Uint32Array;
  private timestamps: Float64Array;
  private truths: Float64Array;
  private ids: number;
  private labels: number;
  private keyBytes: number;
  readonly token: number;

  /** A new, empty index presized for `expectedLabels` (it grows anyway); or the view of an index's `parts` (a worker's). */
  constructor(source: number | SharedLabelParts) {
    if (typeof source === 'number') {
      const expected = Math.max(16, Math.min(source, 2 ** 26));
      let slotCount = 16;
      while (slotCount < expected * 2) slotCount *= 2;
      this.slots = shared(Int32Array, slotCount);
      this.hashes = shared(Int32Array, expected);
      this.offsets = shared(Float64Array, expected);
      this.lengths = shared(Int32Array, expected);
      this.heads = shared(Uint32Array, expected);
      this.keys = shared(Uint8Array, expected * 40);
      this.previous = shared(Uint32Array, expected);
      this.timestamps = shared(Float64Array, expected);
      this.truths = shared(Float64Array, expected);
      this.ids = 0;
      this.labels = 0;
      this.keyBytes = 0;
      this.token = ++indexes;
    } else {
      ({ slots: this.slots, hashes: this.hashes, offsets: this.offsets, lengths: this.lengths, keys: this.keys, heads: this.heads, previous: this.previous, timestamps: this.timestamps, truths: this.truths, token: this.token } = source);
      this.ids = this.heads.length;
      this.labels = this.timestamps.length;
      this.keyBytes = this.keys.length;
    }
    this.mask = this.slots.length - 1;
  }

  /** The index as shared arrays, each cut to what is used (views: no copy). */
  get parts(): SharedLabelParts {
    const ids = this.ids;
    const labels = this.labels;
    return {
      slots: this.slots,
      hashes: this.hashes.subarray(0, ids),
      offsets: this.offsets.subarray(0, ids),
      lengths: this.lengths.subarray(0, ids),
      keys: this.keys.subarray(0, this.keyBytes),
      heads: this.heads.subarray(0, ids),
      previous: this.previous.subarray(0, labels),
      timestamps: this.timestamps.subarray(0, labels),
      truths: this.truths.subarray(0, labels),
      token: this.token,
    };
  }

  /**
   * Adds one label, its id given as UTF-8 bytes (`bytes[start..end)`, a label batch's arena) with
   * its StringKeyTable hash (the batch's idHash); its index (sequence number) is the number of
   * labels added before it.
   */
  add(bytes: Uint8Array, start: number, end: number, hash: number, yTrue: number, labelTsMicros: number): void {
    const label = this.labels;
    if (label >= MAX_LABELS) {
      throw new ModelMetricsError('E_INTERNAL', `the label index is full: ${label} labels, the limit is ${MAX_LABELS} (2^31 - 1); process fewer label partitions per run`, { operation: 'SharedLabelIndex.add', labels: label });
    }
    if (label === this.timestamps.length) {
      const grown = label * 2;
      this.previous = sharedLike(this.previous, grown);
      this.timestamps = sharedLike(this.timestamps, grown);
      this.truths = sharedLike(this.truths, grown);
    }
    const entry = this.findOrInsert(bytes, start, end, hash);
    if (entry < 0) {
      const id = -entry - 1;
      this.heads[id] = label + 1;
      this.previous[label] = 0;
    } else {
      this.previous[label] = this.heads[entry]!;
      this.heads[entry] = label + 1;
    }
    this.timestamps[label] = labelTsMicros;
    this.truths[label] = yTrue;
    this.labels = label + 1;
  }

  /** The entry of the id, or -(new entry) - 1 when it was inserted. */
  private findOrInsert(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const { slots, mask } = this;
    const tag = hash & ~mask;
    let slot = hash & mask;
    for (; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) break;
      if ((stored & ~mask) === tag && this.holds((stored & mask) - 1, bytes, start, length, hash)) return (stored & mask) - 1;
    }
    const entry = this.ids;
    if (entry === this.hashes.length) {
      const grown = entry * 2;
      this.hashes = sharedLike(this.hashes, grown);
      this.offsets = sharedLike(this.offsets, grown);
      this.lengths = sharedLike(this.lengths, grown);
      this.heads = sharedLike(this.heads, grown);
    }
    const padded = (length + 3) & ~3;
    if (this.keyBytes + padded > this.keys.length) this.keys = sharedLike(this.keys, Math.max(this.keys.length * 2, this.keyBytes + padded));
    const keys = this.keys;
    const at = this.keyBytes;
    for (let i = 0; i < length; i++) keys[at + i] = bytes[start + i]!;
    this.keyBytes = at + padded;
    this.hashes[entry] = hash;
    this.offsets[entry] = at;
    this.lengths[entry] = length;
    this.ids = entry + 1;
    if (this.ids * 2 > slots.length) this.rehash(slots.length * 2);
    else slots[slot] = tag | (entry + 1);
    return -entry - 1;
  }

  /** Doubles the slots and refills them from the stored hashes. */
  private rehash(slotCount: number): void {
    const slots = shared(Int32Array, slotCount);
    const mask = slotCount - 1;
    for (let entry = 0; entry < this.ids; entry++) {
      const hash = this.hashes[entry]!;
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = (hash & ~mask) | (entry + 1);
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** Whether entry holds the id `bytes[start..start+length)` with this hash. */
  private holds(entry: number, bytes: Uint8Array, start: number, length: number, hash: number): boolean {
    if (this.hashes[entry] !== hash || this.lengths[entry] !== length) return false;
    const keys = this.keys;
    const offset = this.offsets[entry]!;
    for (let i = 0; i < length; i++) if (keys[offset + i] !== bytes[start + i]) return false;
    return true;
  }

  /** The chain head of the id `bytes[start..end)` whose StringKeyTable hash is `hash`, or -1. */
  headOf(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const { slots, mask } = this;
    const tag = hash & ~mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      if ((stored & ~mask) === tag && this.holds((stored & mask) - 1, bytes, start, length, hash)) return this.heads[(stored & mask) - 1]! - 1;
    }
  }

  headFrom(source: StringKeyTable, hash: number): number {
    const { slots, mask } = this;
    const tag = hash & ~mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      if ((stored & ~mask) !== tag) continue;
      const entry = (stored & mask) - 1;
      if (this.hashes[entry] === hash && source.probeEquals(this.keys, this.offsets[entry]!, this.lengths[entry]!)) return this.heads[entry]! - 1;
    }
  }

  next(label: number): number {
    return this.previous[label]! - 1;
  }

  yTrue(label: number): number {
    return this.truths[label]!;
  }

  labelTs(label: number): number {
    return this.timestamps[label]!;
  }

  /** Number of labels added. */
  get size(): number {
    return this.labels;
  }

  /** Number of distinct prediction ids among them. */
  get distinctIds(): number {
    return this.ids;
  }

  /** Bytes of shared memory held. */
  get byteSize(): number {
    return [this.slots, this.hashes, this.offsets, this.lengths, this.keys, this.heads, this.previous, this.timestamps, this.truths].reduce((n, a) => n + a.byteLength, 0);
  }
}
