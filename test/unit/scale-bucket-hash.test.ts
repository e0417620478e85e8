/**
 * The bucket hash of the spill and the sharded mode (src/scale/bucket-hash.ts): the same bucket for
 * the same id in every process (pinned values: a change would mix the buckets of pods running
 * different releases), from bytes or string alike, spread evenly, and independent across levels
 * (the ids of one bucket spread evenly over the next level's buckets).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StringBucketer, bucketOf, idHash } from '../../src/scale/bucket-hash.js';

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

/** Counts per bucket of `ids` at a level. */
function histogram(ids: readonly string[], buckets: number, level: number): number[] {
  const counts = new Array<number>(buckets).fill(0);
  const bucketer = new StringBucketer(buckets, level);
  for (const id of ids) counts[bucketer.of(id)]!++;
  return counts;
}

/** Pearson's chi-square statistic of counts against a uniform spread. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
}

describe('bucketOf', () => {
  it('is a fixed function of the bytes and the level (pinned: pods of different releases must agree)', () => {
    // FNV-1a from offset 0x811c9dc5 + (level + 1)·0x9e3779b9, then lowbias32; the same four values come
    // from a separate 8-line Python implementation of that definition.
    expect([idHash(utf8(''), 0, 0, 0), idHash(utf8('a'), 0, 1, 0), idHash(utf8('pred-000001'), 0, 11, 0), idHash(utf8('pred-000001'), 0, 11, 1)]).toMatchInlineSnapshot(`
      [
        3373236609,
        1856453621,
        2400404828,
        4082131907,
      ]
    `);
    expect(bucketOf(utf8('pred-000001'), 0, 11, 1, 0)).toBe(0);
    expect(bucketOf(utf8('xpred-000001y'), 1, 12, 64, 0)).toBe(bucketOf(utf8('pred-000001'), 0, 11, 64, 0));
  });

  it('gives the string path the same bucket as the UTF-8 bytes, for ASCII, accents, CJK and astral characters', () => {
    for (const id of ['abc', 'é-ü', '预测-7', '😀-id', 'x'.repeat(1000), '']) {
      const bytes = utf8(id);
      for (const level of [0, 1, 5]) expect(new StringBucketer(37, level).of(id)).toBe(bucketOf(bytes, 0, bytes.length, 37, level));
    }
  });

  it('stays within 0 … buckets-1 and spreads UUIDs and sequential ids evenly', () => {
    const uuids = Array.from({ length: 64_000 }, () => randomUUID());
    const sequential = Array.from({ length: 64_000 }, (_, i) => `pred-${String(i).padStart(8, '0')}`);
    for (const ids of [uuids, sequential]) {
      for (const buckets of [2, 16, 61]) {
        const counts = histogram(ids, buckets, 0);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(ids.length);
        // chi-square with buckets-1 degrees of freedom: mean buckets-1, sd sqrt(2(buckets-1)); 6 sd is never reached by chance.
        expect(chiSquare(counts)).toBeLessThan(buckets - 1 + 6 * Math.sqrt(2 * (buckets - 1)));
      }
    }
  });

  it('spreads the ids of one bucket evenly over the next level (re-partitioning splits a bucket)', () => {
    const ids = Array.from({ length: 200_000 }, (_, i) => `pred-${i}`);
    const level0 = new StringBucketer(16, 0);
    const inBucket3 = ids.filter((id) => level0.of(id) === 3);
    expect(inBucket3.length).toBeGreaterThan(10_000);
    for (const level of [1, 2, 7]) {
      const counts = histogram(inBucket3, 16, level);
      expect(chiSquare(counts)).toBeLessThan(15 + 6 * Math.sqrt(30));
    }
  });
});
