import { describe, expect, it } from 'vitest';
import { MetricAccumulator } from '../../src/metrics/accumulator.js';
import { SUM_FIELDS } from '../../src/metrics/formulas.js';
import { seededRandom as random } from '../../src/demo/generate.js';


/** |actual − expected| / expected. */
function relative(actual: number | null, expected: number): number {
  return Math.abs((actual ?? NaN) - expected) / expected;
}

describe('label delay quantiles', () => {
  it('are within 1% on 1 … 10000 s in shuffled order, and the max is exact', () => {
    const delays = Array.from({ length: 10_000 }, (_, i) => i + 1);
    const next = random(3);
    for (let i = delays.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [delays[i], delays[j]] = [delays[j]!, delays[i]!];
    }
    const acc = new MetricAccumulator();
    for (const d of delays) acc.addLabeled(1, 1, d);
    const m = acc.finish();
    // Interpolated quantiles of 1 … 10000: p50 = 5000.5, p95 = 1 + 0.95·9999 = 9500.05.
    expect(relative(m.label_delay_p50_s, 5000.5)).toBeLessThan(0.01);
    expect(relative(m.label_delay_p95_s, 9500.05)).toBeLessThan(0.01);
    expect(m.label_delay_max_s).toBe(10_000);
  });

  it('are within 1% of the sample quantiles on a skewed distribution spanning microseconds to weeks', () => {
    // Log-uniform over 1e-6 … 1e6 s. The reference is the sample's own order statistic at rank q·(n − 1)
    // (the rank DDSketch reports), so only the sketch's 0.5% bin error separates the two.
    const next = random(9);
    const acc = new MetricAccumulator();
    const delays = new Float64Array(100_000);
    for (let i = 0; i < delays.length; i++) {
      delays[i] = 10 ** (-6 + 12 * next());
      acc.addLabeled(1, 1, delays[i]!);
    }
    delays.sort();
    const m = acc.finish();
    expect(relative(m.label_delay_p50_s, delays[Math.floor(0.5 * (delays.length - 1))]!)).toBeLessThan(0.01);
    expect(relative(m.label_delay_p95_s, delays[Math.floor(0.95 * (delays.length - 1))]!)).toBeLessThan(0.01);
    expect(m.label_delay_max_s).toBe(delays[delays.length - 1]);
  });

  it('are 0 when every delay is 0, and negative delays count as 0', () => {
    const acc = new MetricAccumulator();
    acc.addLabeled(1, 1, 0);
    acc.addLabeled(1, 1, -30);
    acc.addLabeled(1, 1, 0);
    const m = acc.finish();
    expect(m.label_delay_p50_s).toBe(0);
    expect(m.label_delay_p95_s).toBe(0);
    expect(m.label_delay_max_s).toBe(0);
  });

  it('mix zero and positive delays', () => {
    // 60 zeros and 40 delays of 100 s: p50 is a zero, p95 is ~100.
    const acc = new MetricAccumulator();
    for (let i = 0; i < 60; i++) acc.addLabeled(1, 1, 0);
    for (let i = 0; i < 40; i++) acc.addLabeled(1, 1, 100);
    const m = acc.finish();
    expect(m.label_delay_p50_s).toBe(0);
    expect(relative(m.label_delay_p95_s, 100)).toBeLessThan(0.005);
    expect(m.label_delay_max_s).toBe(100);
  });

  it('are null on a slice with predictions but no labels', () => {
    const acc = new MetricAccumulator();
    acc.addUnlabeled();
    expect(acc.finish().label_delay_p95_s).toBeNull();
  });
});

describe('MetricAccumulator.merge', () => {
  /** Feeds the same records to `whole` and, round-robin, to `parts`. */
  function feed(whole: MetricAccumulator, parts: MetricAccumulator[], n: number, value: () => [number, number, number] | null): void {
    for (let i = 0; i < n; i++) {
      const part = parts[i % parts.length]!;
      const record = value();
      if (record === null) {
        whole.addUnlabeled();
        part.addUnlabeled();
      } else {
        whole.addLabeled(...record);
        part.addLabeled(...record);
      }
    }
  }

  it('equals accumulating everything into one (exact sums on exactly representable data)', () => {
    // Multiples of 1/1024 below 1000 (20 bits): every error, square and fourth power, and their sums over
    // 30,000 records (≤ 95 bits), fit a double word exactly, so those sums cannot depend on the order of
    // addition and must be equal bit for bit. Σ|e/y| adds rounded quotients and is compared after rounding.
    const next = random(21);
    const whole = new MetricAccumulator();
    const parts = [new MetricAccumulator(), new MetricAccumulator(), new MetricAccumulator()];
    feed(whole, parts, 30_000, () =>
      next() < 0.1
        ? null
        : [Math.floor(next() * 1e6) / 1024, Math.floor(next() * 1e6) / 1024, Math.floor(next() * 864_000) / 10],
    );
    parts[1]!.invalidCount = 2;
    parts[2]!.duplicateLabelCount = 3;
    parts[2]!.misplacedCount = 4;
    whole.invalidCount = 2;
    whole.duplicateLabelCount = 3;
    whole.misplacedCount = 4;
    const merged = new MetricAccumulator();
    for (const p of parts) merged.merge(p);
    expect(merged.finish()).toEqual(whole.finish());
    for (const sum of SUM_FIELDS) {
      expect(merged.pairOf(sum), sum).toEqual(whole.pairOf(sum));
    }
  });

  it('equals accumulating everything into one on arbitrary doubles (sums to 1e-15, same quantiles)', () => {
    const next = random(22);
    const whole = new MetricAccumulator();
    const parts = [new MetricAccumulator(), new MetricAccumulator()];
    feed(whole, parts, 20_000, () => [Math.exp(10 * next()), Math.exp(10 * next()), next() * 1e5]);
    parts[0]!.merge(parts[1]!);
    const a = parts[0]!.finish();
    const b = whole.finish();
    for (const [k, v] of Object.entries(b)) {
      const got = (a as unknown as Record<string, number | null>)[k];
      if (typeof v === 'number' && v !== 0) expect(Math.abs(got! - v) / Math.abs(v), k).toBeLessThan(1e-15);
      else expect(got, k).toBe(v);
    }
    // The sketches hold the same bins, so the quantiles are identical, not just close.
    expect(a.label_delay_p50_s).toBe(b.label_delay_p50_s);
    expect(a.label_delay_p95_s).toBe(b.label_delay_p95_s);
  });

  it('handles a sketch whose largest bin is key 0 (delay ≈ 1 s), which DDSketch.merge gets wrong', () => {
    // @datadog/sketches-js 2.1.1 (used before metrics v2) DenseStore.merge read maxKey 0 as "absent"; its p95 here was 0.5 s.
    const a = new MetricAccumulator();
    a.addLabeled(1, 1, 1e-6);
    const b = new MetricAccumulator();
    b.addLabeled(1, 1, 0.5);
    b.addLabeled(1, 1, 1);
    b.addLabeled(1, 1, 1);
    a.merge(b);
    const m = a.finish();
    expect(relative(m.label_delay_p95_s, 1)).toBeLessThan(0.01);
    expect(relative(m.label_delay_p50_s, 0.5)).toBeLessThan(0.01);
    expect(m.label_delay_max_s).toBe(1);
  });

  it('merges into and from accumulators without labels', () => {
    const labeled = new MetricAccumulator();
    labeled.addLabeled(3, 1, 10);
    const empty = new MetricAccumulator();
    empty.addUnlabeled();
    empty.merge(labeled);
    labeled.merge(new MetricAccumulator());
    expect(empty.finish()).toMatchObject({ count: 2, labeled_count: 1, mse: 4, label_delay_max_s: 10 });
    expect(relative(empty.finish().label_delay_p50_s, 10)).toBeLessThan(0.005);
    expect(labeled.finish()).toMatchObject({ count: 1, labeled_count: 1, mse: 4 });
  });
});

describe('data-quality counters', () => {
  it('are reported as set by the join', () => {
    const acc = new MetricAccumulator();
    acc.invalidCount = 1;
    acc.duplicatePredictionCount = 2;
    acc.duplicateLabelCount = 3;
    acc.negativeDelayCount = 4;
    acc.misplacedCount = 5;
    expect(acc.finish()).toMatchObject({
      invalid_count: 1,
      duplicate_prediction_count: 2,
      duplicate_label_count: 3,
      negative_delay_count: 4,
      misplaced_count: 5,
    });
  });
});
