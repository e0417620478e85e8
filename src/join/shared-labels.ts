/**
 * The labels of a run in shared memory (SPEC §9 --workers): built by the main thread in (object key,
 * record) order, straight from the columnar label batches, into flat arrays on SharedArrayBuffers,
 * so the worker threads join predictions against the very same labels without a copy per thread
 * (every join task carries the same shared arrays). Label numbers, chains and the tie rule are
 * those of LabelIndex (the main-thread path's), so every rule (policy.ts, maturity.ts) gives the
 * same answer on either.
 *
 * Layout: per distinct id one entry of four Int32 words — its hash, the byte length of its key,
 * the key's offset in 4-byte words into one byte arena, and its latest label + 1 — so a probe that
 * reaches an entry reads one cache line; per label the previous label of the same id + 1 (0 ends
 * the chain), its label_ts and y_true. Lookup: open addressing over a power-of-two slot array at most half full; a
 * slot holds entry + 1 in its low bits and the hash's high bits above them (as StringKeyTable), so
 * a probe that meets another key mostly skips it without reading that key's entry. Arrays double
 * when full (a copy, amortized); the batches' id hashes (hashUtf8) are the table's hashes.
 */
import { ModelMetricsError } from '../errors.js';
import { MAX_LABELS, type LabelChains } from './label-index.js';

/** The shared arrays of the index, as a task message carries them (structured clone shares SharedArrayBuffers). */
export interface SharedLabelParts {
  slots: Int32Array;
  /** Per distinct id: hash, key byte length, key offset in words, latest label + 1. */
  entries: Int32Array;
  keys: Uint8Array;
  /** Per label: the previous label of the same id + 1, 0 at the end of the chain. */
  previous: Uint32Array;
  timestamps: Float64Array;
  truths: Float64Array;
  /** Identifies the index: a worker rebuilds its view only when it changes. */
  token: number;
}

let indexes = 0;

type Column = Int32Array | Uint32Array | Float64Array | Uint8Array;

// The words of an entry.
const STRIDE = 4;
const HASH = 0;
const LENGTH = 1;
const OFFSET = 2;
const HEAD = 3;

/** A typed array of `length` elements like `like`, on a SharedArrayBuffer, holding `like`'s values. */
function sharedLike<T extends Column>(like: T, length: number): T {
  const ctor = like.constructor as { new (buffer: SharedArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number };
  const bytes = Math.max(1, length) * ctor.BYTES_PER_ELEMENT;
  let buffer: SharedArrayBuffer;
  try {
    buffer = new SharedArrayBuffer(bytes);
  } catch (error) {
    throw new ModelMetricsError('E_INTERNAL', `the label index could not allocate ${bytes} bytes of shared memory (${error instanceof Error ? error.message : String(error)}); give the job more memory, or a lower --memory-budget so that the day is joined in buckets`, { operation: 'SharedLabelIndex', option: '--memory-budget' }, { cause: error });
  }
  const grown = new ctor(buffer, 0, length);
  grown.set(like.subarray(0, Math.min(like.length, length)) as never);
  return grown;
}

function shared<T extends Column>(ctor: { new (length: number): T }, length: number): T {
  return sharedLike(new ctor(0), length);
}

/** Labels by prediction id in shared memory; see the module doc. */
/** Rows read ahead at once (entriesOf, touchHeads): their slots, entries, keys and head labels stay in the caches. */
export const READ_AHEAD_ROWS = 128;

export class SharedLabelIndex implements LabelChains {
  private slots: Int32Array;
  private mask: number;
  private entries: Int32Array;
  private keys: Uint8Array;
  /** A digest of what entriesOf and touchHeads read ahead: stored only so those reads are not optimised away. */
  touched = 0;
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
      this.entries = shared(Int32Array, expected * STRIDE);
      this.keys = shared(Uint8Array, expected * 40);
      this.previous = shared(Uint32Array, expected);
      this.timestamps = shared(Float64Array, expected);
      this.truths = shared(Float64Array, expected);
      this.ids = 0;
      this.labels = 0;
      this.keyBytes = 0;
      this.token = ++indexes;
    } else {
      ({ slots: this.slots, entries: this.entries, keys: this.keys, previous: this.previous, timestamps: this.timestamps, truths: this.truths, token: this.token } = source);
      this.ids = this.entries.length / STRIDE;
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
      entries: this.entries.subarray(0, ids * STRIDE),
      keys: this.keys.subarray(0, this.keyBytes),
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
    const at = this.findOrInsert(bytes, start, end, hash) + HEAD;
    this.previous[label] = this.entries[at]!;
    this.entries[at] = label + 1;
    this.timestamps[label] = labelTsMicros;
    this.truths[label] = yTrue;
    this.labels = label + 1;
  }

  /** The start (in words) of the id's entry, inserted (with no label yet) when absent. */
  private findOrInsert(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const { slots, mask } = this;
    const tag = hash & ~mask;
    let slot = hash & mask;
    for (; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) break;
      if ((stored & ~mask) === tag && this.holds((stored & mask) - 1, bytes, start, length, hash)) return ((stored & mask) - 1) * STRIDE;
    }
    const entry = this.ids;
    if ((entry + 1) * STRIDE > this.entries.length) this.entries = sharedLike(this.entries, this.entries.length * 2);
    const padded = (length + 3) & ~3;
    if (this.keyBytes + padded > this.keys.length) this.keys = sharedLike(this.keys, Math.max(this.keys.length * 2, this.keyBytes + padded));
    const keys = this.keys;
    const offset = this.keyBytes;
    for (let i = 0; i < length; i++) keys[offset + i] = bytes[start + i]!;
    this.keyBytes = offset + padded;
    const base = entry * STRIDE;
    const entries = this.entries;
    entries[base + HASH] = hash;
    entries[base + LENGTH] = length;
    entries[base + OFFSET] = offset / 4;
    entries[base + HEAD] = 0;
    this.ids = entry + 1;
    if (this.ids * 2 > slots.length) this.rehash(slots.length * 2);
    else slots[slot] = tag | (entry + 1);
    return base;
  }

  /** Doubles the slots and refills them from the stored hashes. */
  private rehash(slotCount: number): void {
    const slots = shared(Int32Array, slotCount);
    const mask = slotCount - 1;
    for (let entry = 0; entry < this.ids; entry++) {
      const hash = this.entries[entry * STRIDE + HASH]!;
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = (hash & ~mask) | (entry + 1);
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** Whether entry holds the id `bytes[start..start+length)` with this hash. */
  private holds(entry: number, bytes: Uint8Array, start: number, length: number, hash: number): boolean {
    const base = entry * STRIDE;
    const entries = this.entries;
    if (entries[base + HASH] !== hash || entries[base + LENGTH] !== length) return false;
    const keys = this.keys;
    const offset = entries[base + OFFSET]! * 4;
    for (let i = 0; i < length; i++) if (keys[offset + i] !== bytes[start + i]) return false;
    return true;
  }

  /** The entry of the id `bytes[start..end)` whose StringKeyTable hash is `hash`, or -1 when it has no label. */
  entryOf(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const { slots, mask } = this;
    const tag = hash & ~mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      if ((stored & ~mask) === tag && this.holds((stored & mask) - 1, bytes, start, length, hash)) return (stored & mask) - 1;
    }
  }

  /**
   * `entryOf` of rows `from..to` of a batch (ids in `bytes` ending at `idEnds`, hashed in `idHash`),
   * into `out[0..to-from)`. A probe is three dependent cache misses (slot, entry, key bytes) in
   * arrays far larger than the caches; one row at a time the CPU waits out each in turn, so the
   * rows' slots are read first, then their entries, then their keys' first bytes (reads that do
   * not depend on each other, so they overlap), and only then each row is looked up.
   */
  entriesOf(bytes: Uint8Array, idEnds: Int32Array, idHash: Int32Array, from: number, to: number, out: Int32Array): void {
    const { slots, mask, entries, keys } = this;
    for (let row = from; row < to; row++) out[row - from] = slots[idHash[row]! & mask]!;
    let touched = 0;
    for (let row = from; row < to; row++) {
      const stored = out[row - from]!;
      if (stored !== 0) touched ^= entries[((stored & mask) - 1) * STRIDE + OFFSET]!;
    }
    for (let row = from; row < to; row++) {
      const stored = out[row - from]!;
      if (stored !== 0) touched ^= keys[entries[((stored & mask) - 1) * STRIDE + OFFSET]! * 4]!;
    }
    // Kept, so the reads above are not optimised away.
    this.touched = touched;
    for (let row = from; row < to; row++) out[row - from] = this.entryOf(bytes, row === 0 ? 0 : idEnds[row - 1]!, idEnds[row]!, idHash[row]!);
  }

  /**
   * Reads ahead the head labels (chain link, label_ts, y_true) of rows `from..to` of a planned batch
   * (`heads`, -1: none; rows whose `plan` is negative are skipped), so that joining those rows one
   * by one finds them in the caches: the same overlap of cache misses as entriesOf, on a worker.
   */
  touchHeads(heads: Int32Array, plan: Int32Array, from: number, to: number): void {
    const { previous, timestamps, truths } = this;
    let touched = 0;
    for (let row = from; row < to; row++) {
      const head = heads[row]!;
      if (head >= 0 && plan[row]! >= 0) touched += previous[head]! + timestamps[head]! + truths[head]!;
    }
    this.touched = touched;
  }

  /** The chain head (latest label) of an entry. */
  headAt(entry: number): number {
    return this.entries[entry * STRIDE + HEAD]! - 1;
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

  /** Bytes of shared memory allocated (capacity: presized and doubled arrays, not only what is used). */
  get byteSize(): number {
    return [this.slots, this.entries, this.keys, this.previous, this.timestamps, this.truths].reduce((n, a) => n + a.byteLength, 0);
  }
}
