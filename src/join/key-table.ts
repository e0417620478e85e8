/**
 * A compact string-keyed hash table for the join: tens of millions of prediction ids without one
 * JS string or object per key, and without V8's limit of 2^24 entries per `Map`/`Set`.
 *
 * Layout:
 * - keys are stored once, as UTF-8 bytes, in byte arenas (Buffers that start at 64 KiB and double
 *   up to `chunkBytes`, 16 MiB by default); a key never spans two arenas, and a key larger than an
 *   arena gets an arena of its own. Each key starts at a 4-byte aligned offset so hashing and
 *   comparing read whole 32-bit words.
 * - per entry (in insertion order, entry index = dense id) three Int32 words: the full 32-bit
 *   hash, the offset of the key in its arena and its byte length. They live in fixed pages of
 *   2^16 entries, so growing never copies them. An entry's arena is found by binary search over
 *   the first entry of each arena (arenas fill in entry order).
 * - an open-addressing slot array of 2^s Int32 slots (linear probing, 0 = empty), doubled and
 *   refilled from the stored hashes (no key bytes are rehashed) above 0.7 load. A slot holds
 *   entry index + 1 in its low s bits (it is below 2^s because the load stays below 1) and the
 *   hash's own high 32 - s bits above them, the hash's low s bits being the home slot. A probe
 *   that meets another key thus skips it without touching that key's entry (a cache miss) unless
 *   the tags agree: 1 in 2^(32 - s) times, i.e. 1 in 128 at 20 million keys.
 *
 * Cost per key: its UTF-8 bytes (rounded up to 4) + 12 bytes + 5.7 to 11.4 bytes of slots.
 * Limit: 2^30 (1,073,741,824) entries, because the slot array must stay at or below 2^31 slots.
 *
 * Keys are compared as UTF-8 bytes, so two strings that differ only in unpaired surrogates (which
 * UTF-8 cannot encode; both become U+FFFD) are one key. Avro strings are UTF-8, so ids read from
 * Avro never hold them.
 *
 * Length: over ~400 lines because the string and the byte-arena (worker batch) probes must share
 * one hash, one layout and one growth rule; split, they could drift apart silently.
 */
import { ModelMetricsError } from '../errors.js';

/** Most entries one table holds; past it `intern` throws. */
export const MAX_KEY_TABLE_ENTRIES = 2 ** 30;

const MAX_SLOTS = 2 ** 31;
const MAX_LOAD = 0.7;
const PAGE_BITS = 16;
const PAGE_ENTRIES = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_ENTRIES - 1;
const STRIDE = 3; // hash, offset, byte length
const FIRST_ARENA_BYTES = 64 * 1024;
const DEFAULT_ARENA_BYTES = 16 * 1024 * 1024;
const SCRATCH_BYTES = 256;
/** Keys up to this many UTF-16 units try the ASCII copy loop; it must not exceed SCRATCH_BYTES. */
const ASCII_FAST_PATH_CHARS = 128;
/** Whether Int32 words are stored low byte first, as the ASCII fast path assumes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Options of a StringKeyTable; the default suits production, tests shrink arenas to cross them. */
export interface StringKeyTableOptions {
  /** Largest regular arena in bytes (a multiple of 4, from 4 to 2^30); default 16 MiB. */
  chunkBytes?: number;
}

/** Maps string keys to dense entry indexes 0..size-1 in insertion order; see the module doc. */
export class StringKeyTable {
  /** Whether the last `intern` call inserted its key (true) or found it (false). */
  lastWasInserted = false;

  private slots: Int32Array;
  private mask: number;
  private growAt: number;
  private readonly pages: Int32Array[] = [];
  private count = 0;
  private readonly arenas: Buffer[] = [];
  private readonly arenaWords: Int32Array[] = [];
  private readonly arenaFirstEntry: number[] = [];
  private arenaUsed = 0;
  private arenaBytesTotal = 0;
  private readonly maxArenaBytes: number;
  private scratch: Buffer;
  private scratchWords: Int32Array;
  /** UTF-8 length of the key last encoded into the scratch buffer. */
  private probeLength = 0;

  /** `initialCapacity` presizes the slots for that many keys, sparing the early doublings; the table grows anyway. */
  constructor(initialCapacity = 16, options: StringKeyTableOptions = {}) {
    const chunkBytes = options.chunkBytes ?? DEFAULT_ARENA_BYTES;
    // Offsets within an arena live in an Int32 column, hence the 1 GiB ceiling.
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4 || chunkBytes > 2 ** 30 || chunkBytes % 4 !== 0) {
      throw new ModelMetricsError('E_INTERNAL', `StringKeyTable chunkBytes must be a multiple of 4 from 4 to 2^30, got ${chunkBytes}`, { operation: 'StringKeyTable' });
    }
    if (!Number.isSafeInteger(initialCapacity) || initialCapacity < 0) {
      throw new ModelMetricsError('E_INTERNAL', `StringKeyTable initialCapacity must be a non-negative integer, got ${initialCapacity}`, { operation: 'StringKeyTable' });
    }
    this.maxArenaBytes = chunkBytes;
    let slotCount = 16;
    const wanted = Math.min(initialCapacity, MAX_KEY_TABLE_ENTRIES);
    while (slotCount < MAX_SLOTS && slotCount * MAX_LOAD < wanted) slotCount *= 2;
    this.slots = new Int32Array(slotCount);
    this.mask = slotCount - 1;
    this.growAt = growLimit(slotCount);
    this.scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    this.scratchWords = new Int32Array(this.scratch.buffer, this.scratch.byteOffset, SCRATCH_BYTES >>> 2);
  }

  /** Number of distinct keys. */
  get size(): number {
    return this.count;
  }

  /** Bytes held by the structure (arenas + entry pages + slots + scratch), for the memory budget and logs. */
  get byteSize(): number {
    return this.arenaBytesTotal + this.pages.length * PAGE_ENTRIES * STRIDE * 4 + this.slots.byteLength + this.scratch.length;
  }

  /** Entry index of key, inserting it when absent; `lastWasInserted` tells which happened (no allocation per call). */
  intern(key: string): number {
    return this.internHashed(this.encodeAndHash(key));
  }

  /**
   * Encodes `key` into this table's scratch buffer and returns its hash, for `internHashed` here and
   * `findFrom` on another table: one encode-and-hash serves both (the join dedups a prediction id
   * and looks it up among the labels).
   */
  hashKey(key: string): number {
    return this.encodeAndHash(key);
  }

  /**
   * `intern` of a key given as UTF-8 bytes (`bytes[start..end)`, e.g. a columnar batch's id arena)
   * whose `hashUtf8` is `hash` (the batch's idHash): the bytes are copied into the probe buffer and
   * not hashed again, with no string built; the same entry as `intern` of the string they decode to.
   */
  internBytes(bytes: Uint8Array, start: number, end: number, hash: number): number {
    this.copyIntoScratch(bytes, start, end);
    // hashUtf8 reads little-endian words; the table's own hash reads native ones (encodeAndHash).
    return this.internHashed(LITTLE_ENDIAN ? hash : this.hashScratch(end - start));
  }

  /** `intern` of the key last passed to `hashKey`, with the hash it returned. */
  internHashed(hash: number): number {
    const length = this.probeLength;
    const slots = this.slots;
    const mask = this.mask;
    const tag = hash & ~mask;
    let slot = hash & mask;
    for (;;) {
      const stored = slots[slot]!;
      if (stored === 0) break;
      if ((stored & ~mask) === tag && this.matches((stored & mask) - 1, hash, length, this.scratchWords, this.scratch)) {
        this.lastWasInserted = false;
        return (stored & mask) - 1;
      }
      slot = (slot + 1) & mask;
    }
    if (this.count >= this.growAt) {
      this.checkLimit();
      this.grow();
      slot = hash & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    }
    const entry = this.append(hash, length);
    this.slots[slot] = (hash & ~this.mask) | (entry + 1);
    this.lastWasInserted = true;
    return entry;
  }

  /** Entry index of key, or -1. */
  find(key: string): number {
    return this.findFrom(this, this.encodeAndHash(key));
  }

  /** Entry index of the key last passed to `source.hashKey` (which returned `hash`), or -1. */
  findFrom(source: StringKeyTable, hash: number): number {
    const length = source.probeLength;
    const probeWords = source.scratchWords;
    const probeBytes = source.scratch;
    const slots = this.slots;
    const mask = this.mask;
    const tag = hash & ~mask;
    let slot = hash & mask;
    for (;;) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      if ((stored & ~mask) === tag && this.matches((stored & mask) - 1, hash, length, probeWords, probeBytes)) return (stored & mask) - 1;
      slot = (slot + 1) & mask;
    }
  }

  /** The key of an entry (for tests and rare paths; allocates). */
  keyAt(index: number): string {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw new ModelMetricsError('E_INTERNAL', `StringKeyTable.keyAt: entry ${index} does not exist; expected 0..${this.count - 1}`, { operation: 'keyAt' });
    }
    const page = this.pages[index >>> PAGE_BITS]!;
    const base = (index & PAGE_MASK) * STRIDE;
    const offset = page[base + 1]!;
    return this.arenas[this.arenaOf(index)]!.toString('utf8', offset, offset + page[base + 2]!);
  }

  /**
   * Writes key as UTF-8 into the scratch buffer, sets `probeLength` and returns the key's hash.
   * Short ASCII keys (the UUID case) take a fused JS loop: for ASCII the UTF-16 code units are the
   * UTF-8 bytes, so four of them form the same little-endian word the generic path would read back.
   * That loop is several times cheaper than `Buffer.write` plus a second pass; anything else (and
   * big-endian machines, where the word layout differs) takes the generic path.
   */
  private encodeAndHash(key: string): number {
    const length = key.length;
    if (LITTLE_ENDIAN && length <= ASCII_FAST_PATH_CHARS) {
      const words = this.scratchWords;
      const blocks = length >>> 2;
      let h = 0;
      let ascii = 0;
      for (let w = 0, i = 0; w < blocks; w++, i += 4) {
        const a = key.charCodeAt(i);
        const b = key.charCodeAt(i + 1);
        const c = key.charCodeAt(i + 2);
        const d = key.charCodeAt(i + 3);
        ascii |= a | b | c | d;
        let k = a | (b << 8) | (c << 16) | (d << 24);
        words[w] = k;
        k = Math.imul(k, 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        h ^= k;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      }
      const rest = length & 3;
      if (rest !== 0) {
        const tail = blocks << 2;
        const bytes = this.scratch;
        let k = 0;
        for (let i = 0; i < rest; i++) {
          const code = key.charCodeAt(tail + i);
          ascii |= code;
          bytes[tail + i] = code;
          k ^= code << (8 * i);
        }
        k = Math.imul(k, 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        h ^= k;
      }
      if (ascii < 0x80) {
        this.probeLength = length;
        return finalizeHash(h, length);
      }
    }
    const byteLength = this.encodeUtf8(key);
    this.probeLength = byteLength;
    return this.hashScratch(byteLength);
  }

  /**
   * UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair is 2 units and 4 bytes), so
   * the exact `Buffer.byteLength` is only needed when that bound does not fit the scratch buffer.
   */
  private encodeUtf8(key: string): number {
    if (key.length * 3 > this.scratch.length) {
      const needed = Buffer.byteLength(key, 'utf8');
      if (needed > this.scratch.length) this.growScratch(needed);
    }
    return this.scratch.write(key, 0, 'utf8');
  }

  /** Copies the key `bytes[start..end)` into the scratch buffer (grown to fit) and sets `probeLength`. */
  private copyIntoScratch(bytes: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (length > this.scratch.length) this.growScratch(length);
    const scratch = this.scratch;
    if (length <= 64) {
      for (let i = 0; i < length; i++) scratch[i] = bytes[start + i]!;
    } else {
      scratch.set(bytes.subarray(start, end), 0);
    }
    this.probeLength = length;
  }

  /** Replaces the scratch buffer by one of at least `needed` bytes (doubling; its contents are not kept). */
  private growScratch(needed: number): void {
    let capacity = this.scratch.length;
    while (capacity < needed) capacity *= 2;
    this.scratch = Buffer.allocUnsafeSlow(capacity);
    this.scratchWords = new Int32Array(this.scratch.buffer, this.scratch.byteOffset, capacity >>> 2);
  }

  /**
   * MurmurHash3 x86_32 (seed 0) over the scratch bytes, read as native 32-bit words: hashUtf8's hash
   * on a little-endian machine, a hash of this table's own on a big-endian one.
   */
  private hashScratch(length: number): number {
    const words = this.scratchWords;
    const blocks = length >>> 2;
    let h = 0;
    for (let i = 0; i < blocks; i++) h = mixBlock(h, words[i]!);
    return finishHash(h, this.scratch, blocks << 2, length);
  }

  /** Whether entry holds the probe key (a scratch buffer): full hash and length first, then the bytes. */
  private matches(entry: number, hash: number, length: number, probe: Int32Array, scratch: Buffer): boolean {
    const page = this.pages[entry >>> PAGE_BITS]!;
    const base = (entry & PAGE_MASK) * STRIDE;
    if (page[base] !== hash || page[base + 2] !== length) return false;
    const arena = this.arenaOf(entry);
    const offset = page[base + 1]!;
    const stored = this.arenaWords[arena]!;
    const wordBase = offset >>> 2;
    const words = length >>> 2;
    for (let i = 0; i < words; i++) {
      if (stored[wordBase + i] !== probe[i]) return false;
    }
    const bytes = this.arenas[arena]!;
    for (let i = words << 2; i < length; i++) {
      if (bytes[offset + i] !== scratch[i]) return false;
    }
    return true;
  }

  /** The arena holding an entry's key: the last arena whose first entry is <= entry. */
  private arenaOf(entry: number): number {
    const first = this.arenaFirstEntry;
    let low = 0;
    let high = first.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (first[middle]! <= entry) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /** Copies the scratch key into the current arena and records a new entry; returns its index. */
  private append(hash: number, length: number): number {
    const padded = (length + 3) & ~3;
    const entry = this.count;
    let arena = this.arenas.length - 1;
    if (arena < 0 || this.arenaUsed + padded > this.arenas[arena]!.length) {
      const previous = arena < 0 ? FIRST_ARENA_BYTES / 2 : this.arenas[arena]!.length;
      let bytes = Math.min(this.maxArenaBytes, Math.max(previous * 2, 4));
      if (bytes < padded) bytes = padded;
      const buffer = Buffer.allocUnsafeSlow(bytes);
      this.arenas.push(buffer);
      this.arenaWords.push(new Int32Array(buffer.buffer, buffer.byteOffset, bytes >>> 2));
      this.arenaFirstEntry.push(entry);
      this.arenaBytesTotal += bytes;
      this.arenaUsed = 0;
      arena++;
    }
    const offset = this.arenaUsed;
    const target = this.arenaWords[arena]!;
    const source = this.scratchWords;
    const words = padded >>> 2;
    const wordBase = offset >>> 2;
    if (words <= 16) {
      // Short keys (UUIDs are 9 words): a word loop beats the native call of Buffer.copy.
      for (let i = 0; i < words; i++) target[wordBase + i] = source[i]!;
    } else {
      this.scratch.copy(this.arenas[arena]!, offset, 0, length);
    }
    this.arenaUsed = offset + padded;

    const pageIndex = entry >>> PAGE_BITS;
    if (pageIndex === this.pages.length) this.pages.push(new Int32Array(PAGE_ENTRIES * STRIDE));
    const page = this.pages[pageIndex]!;
    const base = (entry & PAGE_MASK) * STRIDE;
    page[base] = hash;
    page[base + 1] = offset;
    page[base + 2] = length;
    this.count = entry + 1;
    return entry;
  }

  /** Throws once the table is full: past 2^30 entries the slot array cannot double again. */
  private checkLimit(): void {
    if (this.count >= MAX_KEY_TABLE_ENTRIES) {
      throw new ModelMetricsError(
        'E_INTERNAL',
        `StringKeyTable is full: ${this.count} distinct keys, the limit is ${MAX_KEY_TABLE_ENTRIES} (2^30); process fewer days or label partitions per run`,
        { operation: 'intern', entries: this.count },
      );
    }
  }

  /** Doubles the slot array and refills it from the stored hashes, in entry order. */
  private grow(): void {
    const slotCount = this.slots.length * 2;
    const slots = new Int32Array(slotCount);
    const mask = slotCount - 1;
    for (let entry = 0; entry < this.count; entry++) {
      const hash = this.pages[entry >>> PAGE_BITS]![(entry & PAGE_MASK) * STRIDE]!;
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = (hash & ~mask) | (entry + 1);
    }
    this.slots = slots;
    this.mask = mask;
    this.growAt = growLimit(slotCount);
  }
}

/** One 4-byte block of MurmurHash3 x86_32 mixed into the state. */
function mixBlock(state: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let h = state ^ k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The 0-3 tail bytes `bytes[tail..tail + (length & 3))` of a key of `length` bytes, then the finalizer. */
function finishHash(state: number, bytes: Uint8Array, tail: number, length: number): number {
  let h = state;
  const rest = length & 3;
  if (rest !== 0) {
    let k = bytes[tail]!;
    if (rest > 1) k ^= bytes[tail + 1]! << 8;
    if (rest > 2) k ^= bytes[tail + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  return finalizeHash(h, length);
}

/**
 * The hash StringKeyTable gives on a little-endian machine (`hashKey`) to the key whose UTF-8 bytes
 * are `bytes[start..end)`, and the one `internBytes` takes on any: computed straight from those
 * bytes at any alignment (a worker batch's id column, so the main thread need not hash the ids again).
 */
export function hashUtf8(bytes: Uint8Array, start: number, end: number): number {
  const length = end - start;
  const blocks = length >>> 2;
  let h = 0;
  let at = start;
  for (let i = 0; i < blocks; i++, at += 4) h = mixBlock(h, bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24));
  return finishHash(h, bytes, at, length);
}

/**
 * The MurmurHash3 finalizer (avalanches every bit, so `hash & mask` spreads well). The result is a
 * signed 32-bit value: the Int32 column stores it as is, and `hash & mask` is never negative
 * because the largest mask (2^31 - 1) has its sign bit clear.
 */
function finalizeHash(state: number, length: number): number {
  let h = state ^ length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** Entries a slot array of this size takes before doubling; the largest one takes up to the entry limit. */
function growLimit(slotCount: number): number {
  return slotCount >= MAX_SLOTS ? MAX_KEY_TABLE_ENTRIES : Math.floor(slotCount * MAX_LOAD);
}
