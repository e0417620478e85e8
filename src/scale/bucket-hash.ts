/**
 * Which hash bucket a prediction id belongs to (SPEC §9: the grace hash join of `--memory-budget`,
 * and the sharded mode, where different pods partition different objects and must agree). The hash
 * is over the id's UTF-8 bytes and has no seed chosen at run time, so every process, thread and
 * release that keeps this file computes the same bucket for the same id.
 *
 * The function is FNV-1a (32-bit) started from a per-level offset basis, then the "lowbias32"
 * finalizer (C. Wellons, hash-prospector), and the bucket is taken from the high bits
 * (`floor(h * buckets / 2^32)`). It is deliberately not the join's own table hash (key-table.ts,
 * MurmurHash3 whose low bits pick the slot): ids of one bucket must still spread over the slots of
 * that bucket's tables. `level` selects an independent hash for re-partitioning a bucket that
 * turned out too big: the ids of one level-0 bucket spread evenly over the level-1 buckets
 * (test/unit/scale-bucket-hash.test.ts checks it).
 */

/** FNV-1a 32-bit offset basis and prime (http://www.isthe.com/chongo/tech/comp/fnv/). */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** Added to the offset basis per level: the 32-bit golden ratio, so levels start far apart. */
const LEVEL_STEP = 0x9e3779b9;
/** Most buckets of one partitioning: a bucket index must fit the hash's 32 bits. */
export const MAX_BUCKETS = 2 ** 16;

/** The 32-bit hash of `bytes[start..end)` at a level, unsigned. */
export function idHash(bytes: Uint8Array, start: number, end: number, level: number): number {
  let h = (FNV_OFFSET + Math.imul(level + 1, LEVEL_STEP)) | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  // lowbias32: every input bit reaches every output bit, so the high bits below are well mixed.
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket (0 … buckets - 1) of the id whose UTF-8 bytes are `bytes[start..end)`. */
export function bucketOf(bytes: Uint8Array, start: number, end: number, buckets: number, level: number): number {
  return Math.floor((idHash(bytes, start, end, level) * buckets) / 2 ** 32);
}

/** bucketOf for ids given as strings (the main-thread path), through one reused UTF-8 buffer. */
export class StringBucketer {
  private scratch = Buffer.allocUnsafe(256);

  constructor(
    readonly buckets: number,
    readonly level: number,
  ) {}

  /** The bucket of `id`. */
  of(id: string): number {
    if (id.length * 3 > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(id.length * 3, this.scratch.length * 2));
    const length = this.scratch.write(id, 0, 'utf8');
    return bucketOf(this.scratch, 0, length, this.buckets, this.level);
  }
}
