/**
 * The pure rules of a sharded day (SPEC §9, src/pipeline/sharded-layout.ts): contiguous shares that
 * cover every object once in key order, a bucket count every pod computes alike (a multiple of K,
 * sized for the budget, bounded by the partitioner's fan-out), and the buckets of each join shard.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SHARDS, bucketsOfShard, shardBucketCount, shardFolder, shareOf } from '../../src/pipeline/sharded-layout.js';
import { MAX_FANOUT } from '../../src/scale/partition.js';

describe('shareOf', () => {
  it.each([0, 1, 2, 5, 7, 100])('%i objects over 1 to 9 shards: contiguous, in order, each object once', (count) => {
    for (let shards = 1; shards <= 9; shards++) {
      const covered: number[] = [];
      let previousEnd = 0;
      for (let index = 0; index < shards; index++) {
        const { start, end } = shareOf(count, index, shards);
        expect(start).toBe(previousEnd);
        expect(end - start).toBeLessThanOrEqual(Math.ceil(count / shards));
        for (let i = start; i < end; i++) covered.push(i);
        previousEnd = end;
      }
      expect(covered).toEqual(Array.from({ length: count }, (_, i) => i));
    }
  });
});

describe('shardBucketCount', () => {
  it('is a multiple of K, at least K, and grows with the day over the budget', () => {
    for (const shards of [1, 2, 3, 7, 16]) {
      const small = shardBucketCount(10, 10, 1 << 30, shards);
      expect(small).toBe(shards);
      const big = shardBucketCount(2_000_000, 1_000_000, 64 << 20, shards);
      expect(big % shards).toBe(0);
      expect(big).toBeGreaterThanOrEqual(shards);
      // 2M labels at 80 B and 1M predictions at 71 B over 64 MiB at 70%: 5 buckets at least.
      expect(big).toBeGreaterThanOrEqual(5);
    }
  });

  it('never exceeds the fan-out of one partitioning (rounded down to a multiple of K), nor falls below K', () => {
    for (const shards of [1, 3, 100, MAX_SHARDS]) {
      const huge = shardBucketCount(1e10, 1e10, 64 * 1024, shards);
      expect(huge % shards).toBe(0);
      expect(huge).toBe(Math.max(shards, Math.floor(MAX_FANOUT / shards) * shards));
    }
  });
});

describe('bucketsOfShard', () => {
  it('deals every bucket to exactly one shard, b mod K', () => {
    const buckets = 12;
    const all = [0, 1, 2].flatMap((shard) => bucketsOfShard(buckets, shard, 3));
    expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: buckets }, (_, b) => b));
    expect(bucketsOfShard(buckets, 1, 3)).toEqual([1, 4, 7, 10]);
  });
});

describe('shardFolder', () => {
  it('names the fingerprint and K inside the staging partition', () => {
    expect(shardFolder('final', '2026-03-02', 'abcdef0123456789ffff', 3)).toBe('_staging/stage=final/dt=2026-03-02/shards-abcdef0123456789-of3/');
  });
});
