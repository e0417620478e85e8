/**
 * Counts by integer key (0 ≤ key < 2^53, e.g. a delay row key: combo · 2^32 + packed code), kept in
 * typed arrays instead of a Map: a Map entry with a key above 2^31 costs a boxed number and about
 * 50 bytes more, and a 2M-prediction day has over half a million delay rows (README, Performance).
 * Open addressing with linear probing over the entry numbers; entries stay in first-added order,
 * which is the order a Map would iterate them in.
 */

/** 2^32, to split a key into its two 32-bit halves. */
const HALF = 2 ** 32;

/** The slot hash of an integer key below 2^53 (both halves mixed; murmur3's finaliser). */
function hashOf(key: number): number {
  const low = key >>> 0;
  let h = Math.imul(low ^ Math.imul((key - low) / HALF, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Slots for `capacity` entries: a power of two (the probe masks with it), at least twice as many. */
function slotCountFor(capacity: number): number {
  return 2 ** Math.ceil(Math.log2(capacity * 2));
}

export class KeyCounts {
  private keys: Float64Array;
  private counts: Float64Array;
  /** Entry number + 1 per slot, 0 for an empty slot; at most half full. */
  private slots: Int32Array;
  private entries = 0;

  constructor(expected = 16) {
    const capacity = Math.max(16, Math.ceil(expected) || 0);
    this.keys = new Float64Array(capacity);
    this.counts = new Float64Array(capacity);
    this.slots = new Int32Array(slotCountFor(capacity));
  }

  /** Number of distinct keys. */
  get size(): number {
    return this.entries;
  }

  /** Bytes held by the arrays (capacity, not use). */
  get byteSize(): number {
    return this.keys.byteLength + this.counts.byteLength + this.slots.byteLength;
  }

  /** Adds `count` to the key's count (a new key's count is `count`). */
  add(key: number, count: number): void {
    const entry = this.entryOf(key);
    if (entry >= 0) {
      this.counts[entry]! += count;
      return;
    }
    if (this.entries === this.keys.length) this.grow();
    const added = this.entries++;
    this.keys[added] = key;
    this.counts[added] = count;
    this.place(added);
  }

  /** The key's count, or undefined when it was never added. */
  get(key: number): number | undefined {
    const entry = this.entryOf(key);
    return entry < 0 ? undefined : this.counts[entry];
  }

  /** The key of entry `at` (0 ≤ at < size, in first-added order). */
  keyAt(at: number): number {
    return this.keys[at]!;
  }

  /** The count of entry `at`. */
  countAt(at: number): number {
    return this.counts[at]!;
  }

  /** Copies of the keys and counts, in first-added order (to hand over to another thread). */
  toArrays(): { keys: Float64Array; counts: Float64Array } {
    return { keys: this.keys.slice(0, this.entries), counts: this.counts.slice(0, this.entries) };
  }

  private entryOf(key: number): number {
    const mask = this.slots.length - 1;
    for (let slot = hashOf(key) & mask; ; slot = (slot + 1) & mask) {
      const stored = this.slots[slot]!;
      if (stored === 0) return -1;
      if (this.keys[stored - 1] === key) return stored - 1;
    }
  }

  private place(entry: number): void {
    const slots = this.slots;
    const mask = slots.length - 1;
    let slot = hashOf(this.keys[entry]!) & mask;
    while (slots[slot] !== 0) slot = (slot + 1) & mask;
    slots[slot] = entry + 1;
  }

  /** Doubles the entries and the slots, and refills the slots. */
  private grow(): void {
    const capacity = this.keys.length * 2;
    const keys = new Float64Array(capacity);
    keys.set(this.keys);
    const counts = new Float64Array(capacity);
    counts.set(this.counts);
    this.keys = keys;
    this.counts = counts;
    this.slots = new Int32Array(slotCountFor(capacity));
    for (let entry = 0; entry < this.entries; entry++) this.place(entry);
  }
}
