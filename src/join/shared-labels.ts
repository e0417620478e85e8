/**
 * A finished LabelIndex, frozen into flat arrays on SharedArrayBuffers, so the worker threads join
 * predictions against the very same labels without a copy per thread (SPEC §9 --workers): the main
 * thread builds the index in (object key, record) order, freezes it once, and every join task
 * carries the same shared arrays. Label numbers, chains and ids are those of the LabelIndex, so
 * every rule (policy.ts, maturity.ts) gives the same answer on either.
 *
 * Lookup: open addressing over a power-of-two slot array at most half full; a slot holds entry + 1
 * in its low bits and the hash's high bits above them (as StringKeyTable), so a probe that meets
 * another key mostly skips it without reading that key's entry.
 */
import type { ExportedLabels, LabelIndex, LabelLookup } from './label-index.js';
import type { StringKeyTable } from './key-table.js';

/** The shared arrays of a frozen index, as a task message carries them (structured clone shares SharedArrayBuffers). */
export interface SharedLabelParts extends ExportedLabels {
  slots: Int32Array;
  /** Identifies the freeze: a worker rebuilds its view only when it changes. */
  token: number;
}

let freezes = 0;

const allocateShared = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(Math.max(bytes, 8));

/** The frozen labels; see the module doc. */
export class SharedLabelIndex implements LabelLookup {
  private readonly mask: number;
  private readonly slots: Int32Array;
  private readonly hashes: Int32Array;
  private readonly offsets: Float64Array;
  private readonly lengths: Int32Array;
  private readonly keys: Uint8Array;
  private readonly heads: Uint32Array;
  private readonly previous: Uint32Array;
  private readonly timestamps: Float64Array;
  private readonly truths: Float64Array;

  constructor(readonly parts: SharedLabelParts) {
    ({ slots: this.slots, heads: this.heads, previous: this.previous, timestamps: this.timestamps, truths: this.truths } = parts);
    ({ hashes: this.hashes, offsets: this.offsets, lengths: this.lengths, keys: this.keys } = parts.keys);
    this.mask = this.slots.length - 1;
  }

  /** Copies a finished index into shared memory (the index itself is left as it was). */
  static freeze(index: LabelIndex): SharedLabelIndex {
    const exported = index.exportColumns(allocateShared);
    const count = exported.heads.length;
    let slotCount = 16;
    while (slotCount < count * 2) slotCount *= 2;
    const slots = new Int32Array(allocateShared(slotCount * 4));
    const mask = slotCount - 1;
    const { hashes } = exported.keys;
    for (let entry = 0; entry < count; entry++) {
      const hash = hashes[entry]!;
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = (hash & ~mask) | (entry + 1);
    }
    return new SharedLabelIndex({ ...exported, slots, token: ++freezes });
  }

  /** The chain head of the id `bytes[start..end)` whose StringKeyTable hash is `hash`, or -1. */
  headOf(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    const { slots, mask, keys } = this;
    const tag = hash & ~mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      if ((stored & ~mask) !== tag) continue;
      const entry = (stored & mask) - 1;
      if (this.hashes[entry] !== hash || this.lengths[entry] !== length) continue;
      const offset = this.offsets[entry]!;
      let same = true;
      for (let i = 0; i < length && same; i++) same = keys[offset + i] === bytes[start + i];
      if (same) return this.heads[entry]! - 1;
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

  /** Number of labels. */
  get size(): number {
    return this.timestamps.length;
  }

  /** Bytes of shared memory held. */
  get byteSize(): number {
    const { parts } = this;
    return [parts.slots, parts.heads, parts.previous, parts.timestamps, parts.truths, parts.keys.hashes, parts.keys.offsets, parts.keys.lengths, parts.keys.keys].reduce((n, a) => n + a.byteLength, 0);
  }
}
