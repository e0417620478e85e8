import { describe, expect, it } from 'vitest';
import { KeyCounts } from '../../src/join/key-counts.js';

describe('KeyCounts', () => {
  it('counts like a Map keyed by integers below 2^53, in first-added order, across growth', () => {
    const table = new KeyCounts();
    const reference = new Map<number, number>();
    let seed = 7;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 50_000; i++) {
      // Keys shaped like delay row keys (combo * 2^32 + code), a few near 2^53, many repeated.
      const combo = next() % 300;
      const key = i % 997 === 0 ? 2 ** 53 - 1 - (next() % 5) : combo * 2 ** 32 + (next() % 200);
      const count = (next() % 3) - 1;
      table.add(key, count);
      reference.set(key, (reference.get(key) ?? 0) + count);
    }
    expect(table.size).toBe(reference.size);
    const entries = Array.from({ length: table.size }, (_, at) => [table.keyAt(at), table.countAt(at)]);
    expect(entries).toEqual([...reference.entries()]);
    for (const [key, count] of reference) expect(table.get(key)).toBe(count);
    expect(table.get(12345)).toBeUndefined();
    const { keys, counts } = table.toArrays();
    expect(Array.from(keys)).toEqual([...reference.keys()]);
    expect(Array.from(counts)).toEqual([...reference.values()]);
  });

  it('grows from any presized capacity (not only powers of two)', () => {
    for (const expected of [0, 1, 17, 1000, 300_001]) {
      const table = new KeyCounts(expected);
      const keys = 3 * expected + 5000;
      for (let i = 0; i < keys; i++) table.add(i * 2 ** 32 + (i % 7), 1);
      expect(table.size).toBe(keys);
      expect(table.get((keys - 1) * 2 ** 32 + ((keys - 1) % 7))).toBe(1);
    }
  });

  it('keeps keys that differ only in the high half apart, and key 0', () => {
    const table = new KeyCounts(1);
    for (let combo = 0; combo < 100; combo++) table.add(combo * 2 ** 32, combo + 1);
    table.add(0, 5);
    expect(table.size).toBe(100);
    expect(table.get(0)).toBe(6);
    expect(table.get(99 * 2 ** 32)).toBe(100);
  });
});
