import { describe, expect, it } from 'vitest';
import { LabelIndex, MAX_LABELS } from '../../src/join/label-index.js';

/** The labels of one id, walked from its head. */
function chain(index: LabelIndex, id: string): number[] {
  const labels: number[] = [];
  for (let label = index.head(id); label >= 0; label = index.next(label)) labels.push(label);
  return labels;
}

describe('LabelIndex', () => {
  it('numbers labels in add order and chains each id from its latest label back', () => {
    const index = new LabelIndex();
    expect(index.size).toBe(0);
    expect(index.head('a')).toBe(-1);
    index.add('a', 1.5, 100);
    index.add('b', 2.5, 200);
    index.add('a', Number.NaN, 300);
    index.add('', -0.25, 400);
    index.add('a', Number.POSITIVE_INFINITY, 50);
    expect(index.size).toBe(5);
    expect(index.distinctIds).toBe(3);
    expect(chain(index, 'a')).toEqual([4, 2, 0]);
    expect(chain(index, 'b')).toEqual([1]);
    expect(chain(index, '')).toEqual([3]);
    expect(index.head('c')).toBe(-1);
    expect(index.next(0)).toBe(-1);
    expect([0, 1, 2, 3, 4].map((label) => index.yTrue(label))).toEqual([1.5, 2.5, Number.NaN, -0.25, Number.POSITIVE_INFINITY]);
    expect([0, 1, 2, 3, 4].map((label) => index.labelTs(label))).toEqual([100, 200, 300, 400, 50]);
    expect(index.byteSize).toBeGreaterThan(0);
  });

  it('keeps timestamps exact up to 2^53 microseconds and y_true as written', () => {
    const index = new LabelIndex();
    const ts = Number.MAX_SAFE_INTEGER;
    index.add('id', -1e308, ts);
    index.add('id', 5e-324, -ts);
    expect(index.labelTs(0)).toBe(ts);
    expect(index.labelTs(1)).toBe(-ts);
    expect(index.yTrue(0)).toBe(-1e308);
    expect(index.yTrue(1)).toBe(5e-324);
  });

  it('keeps every chain right across column chunks (1.2M labels over 300k ids)', () => {
    const ids = 300_000;
    const labels = 1_200_000;
    const index = new LabelIndex();
    for (let label = 0; label < labels; label++) {
      // A stride coprime with the id count scatters each id's labels over the whole sequence.
      index.add(`id-${(label * 7919) % ids}`, label / 2, label * 1000);
    }
    expect(index.size).toBe(labels);
    expect(index.distinctIds).toBe(ids);
    const sampled = new Map<number, number[]>();
    for (let label = labels - 1; label >= 0; label--) {
      const id = (label * 7919) % ids;
      if (id % 997 === 0) sampled.set(id, [...(sampled.get(id) ?? []), label]);
    }
    expect(sampled.size).toBe(Math.ceil(ids / 997));
    for (const [id, expected] of sampled) {
      const got = chain(index, `id-${id}`);
      expect(got).toEqual(expected);
      for (const label of got) {
        expect(index.yTrue(label)).toBe(label / 2);
        expect(index.labelTs(label)).toBe(label * 1000);
      }
    }
    expect(index.head(`id-${ids}`)).toBe(-1);
    expect(index.byteSize / labels).toBeLessThan(120);
  }, 120_000);

  it('documents its label limit', () => {
    expect(MAX_LABELS).toBe(2 ** 31 - 1);
  });
});
