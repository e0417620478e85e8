/**
 * The report's roll-up passes the SPEC §5.1 low parts of v2 records on to the metrics formulas: with
 * y = 1e6 ± 1, where one rounding of Σy² already exceeds SS_tot·1e-9, a roll-up of v2 days still
 * agrees with a direct computation over the rows to 1e-9, and one of the same days as v1 records does not.
 */
import { describe, expect, it } from 'vitest';
import { addDays } from '../../src/calendar.js';
import type { ReportMetricsRecord } from '../../src/report/metrics-reader.js';
import { rollUp } from '../../src/report/rollup.js';
import { type FixtureRow, recordOf, seededRandom } from '../helpers/metrics-fixture.js';

function directR2(rows: readonly FixtureRow[]): number {
  const labeled = rows.filter((r) => r.y_true !== null) as Array<{ y_true: number; y_pred: number }>;
  const mean = labeled.reduce((a, r) => a + r.y_true, 0) / labeled.length;
  const ssTot = labeled.reduce((a, r) => a + (r.y_true - mean) ** 2, 0);
  const ssRes = labeled.reduce((a, r) => a + (r.y_true - r.y_pred) ** 2, 0);
  return 1 - ssRes / ssTot;
}

describe('report roll-up of v2 sum pairs', () => {
  const random = seededRandom(11);
  const days = Array.from({ length: 14 }, (_, d) => ({
    date: addDays('2026-03-01', d),
    rows: Array.from({ length: 500 }, (): FixtureRow => {
      const y = 1e6 + (random() - 0.5) * 2;
      return { y_true: y, y_pred: y + (random() - 0.5) * 0.5 };
    }),
  }));
  const expected = directR2(days.flatMap((d) => d.rows));
  const records = (v2: boolean): ReportMetricsRecord[] =>
    days.map((d) => ({ sum_error_lo: 0, sum_sq_error_lo: 0, sum_abs_error_lo: 0, sum_quad_error_lo: 0, sum_ape_lo: 0, sum_y_true_lo: 0, sum_sq_y_true_lo: 0, label_age_s: null, ...recordOf('final', d.date, { model: 'm', version: 'v1' }, d.rows, v2) }) as unknown as ReportMetricsRecord);

  it('keeps R² to 1e-9 of a direct computation with y = 1e6 ± 1', () => {
    const rolled = rollUp(records(true));
    expect(rolled.labeled_count).toBe(7000);
    expect(rolled.r2).not.toBeNull();
    expect(Math.abs(rolled.r2! - expected) / Math.abs(expected)).toBeLessThan(1e-9);
  });

  it('cannot do so from once-rounded v1 sums (why v2 carries the pairs)', () => {
    const rolled = rollUp(records(false));
    expect(rolled.r2 === null || Math.abs(rolled.r2 - expected) / Math.abs(expected) > 1e-9).toBe(true);
  });
});
