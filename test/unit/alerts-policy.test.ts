import { describe, expect, it } from 'vitest';
import { type AlertSettings, DEFAULT_ALERT_SETTINGS } from '../../src/alerts/defaults.js';
import { type AlertInputRecord, type AlertRun, type BaselineDay, alertInputOf, evaluateAlerts, formatLabelAge, meanAndSd, usableInBaseline } from '../../src/alerts/policy.js';
import { addDays } from '../../src/calendar.js';
import { seededRandom } from '../../src/demo/generate.js';
import { dayWindow } from '../../src/join/policy.js';

const DAY = '2026-03-01';

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(random(), 1e-12))) * Math.cos(2 * Math.PI * random());
}

/** A day-window record of one slice with the given figures. */
function rec(date: string, values: { mse: number; mae?: number; coverage?: number; labeled?: number; slice?: Record<string, string>; model?: string; ageS?: number | null }): AlertInputRecord {
  const w = dayWindow(date);
  return {
    window_start_ts: w.startMicros,
    window_end_ts: w.endMicros,
    model_name: values.model ?? 'eta',
    model_version: 'v1',
    slice_keys: values.slice ?? {},
    labeled_count: values.labeled ?? 1000,
    missing_label_rate: 1 - (values.coverage ?? 0.9),
    mse: values.mse,
    mae: values.mae ?? Math.sqrt(values.mse),
    label_age_s: values.ageS ?? null,
  };
}

/** Baseline days D−1 … D−n, newest first, from a value generator per days-back. */
function history(date: string, n: number, make: (back: number, day: string) => AlertInputRecord[]): BaselineDay[] {
  return Array.from({ length: n }, (_, i) => {
    const day = addDays(date, -(i + 1));
    return { date: day, records: make(i + 1, day) };
  });
}

const finalRun = (date: string): AlertRun => ({ stage: 'final', window: dayWindow(date), labelAgeS: 0 });
const settings = (over: Partial<AlertSettings> = {}): AlertSettings => ({ ...DEFAULT_ALERT_SETTINGS, ...over });

describe('alert policy (SPEC §8)', () => {
  it('sample mean and sd (n − 1); a flat series has sd exactly 0', () => {
    expect(meanAndSd([1, 2, 3, 4])).toEqual({ mean: 2.5, sd: Math.sqrt(5 / 3) });
    expect(meanAndSd([0.1, 0.1, 0.1])).toEqual({ mean: 0.1, sd: 0 });
  });

  /**
   * Alerts and comparisons over `days` days of seeded Gaussian noise around a steady level, each day
   * against its previous 14. With `ageS`, each day also holds a label-age record at that age (lower
   * coverage and MSE, as young labels have) and the days are run as preliminaries at that age.
   */
  function steady(seed: number, days: number, ageS?: number): { alerts: number; compared: number } {
    const random = seededRandom(seed);
    // The young records draw from their own stream, so the finals' series is the same with or without them.
    const youngRandom = seededRandom(seed + 1);
    const start = '2026-01-01';
    const series = new Map<string, Array<{ mse: number; mae: number; coverage: number; ageS: number | null }>>();
    for (let d = 0; d < days + 14; d++) {
      const final = { mse: 10 + 0.3 * gaussian(random), mae: 2.5 + 0.05 * gaussian(random), coverage: 0.9 + 0.004 * gaussian(random), ageS: null };
      const young = { mse: 7 + 0.4 * gaussian(youngRandom), mae: 2.1 + 0.06 * gaussian(youngRandom), coverage: 0.45 + 0.01 * gaussian(youngRandom), ageS: ageS ?? null };
      series.set(addDays(start, d), ageS === undefined ? [final] : [final, young]);
    }
    let alerts = 0;
    let compared = 0;
    for (let d = 14; d < days + 14; d++) {
      const date = addDays(start, d);
      const base = history(date, 14, (_, day) => series.get(day)!.map((values) => rec(day, values)));
      // A preliminary publishes, as its ordinary record, what the finals record at its age.
      const today = series.get(date)!.at(-1)!;
      const run: AlertRun = ageS === undefined ? finalRun(date) : { stage: 'preliminary', window: dayWindow(date), labelAgeS: ageS + 600 };
      const out = evaluateAlerts([rec(date, { ...today, ageS: null })], base, run, settings());
      alerts += out.alerts.length;
      compared += out.compared;
    }
    return { alerts, compared };
  }

  // The false-alarm rate of the sigma rule on steady normal noise. A new value X and n = 14 earlier
  // draws of the same normal distribution: (X − mean)/(sd·√(1 + 1/n)) follows Student's t with
  // n − 1 = 13 degrees of freedom, so P(X > mean + 3·sd) = P(t₁₃ > 3/√(1 + 1/14)) = P(t₁₃ > 2.898)
  // ≈ 0.0062 per metric and day (coverage, downward, the same by symmetry). 60 days × 3 metrics
  // expect 180 × 0.0062 ≈ 1.1 chance alerts, so about one seed in three has none (e^−1.1 ≈ 0.33;
  // overlapping baselines make the days slightly dependent); seed 9 is such a one. What holds the
  // rule itself is the rate test over 2,000 days below, from both sides: a baseline that included
  // the day compared, a population sd or k applied as k² would each move the rate out of the band.
  it('steady: 60 days of noise at k = 3 raise no alert', () => {
    expect(steady(9, 60)).toEqual({ alerts: 0, compared: 60 });
  });

  it('steady: the false-alarm rate at k = 3 over 14 baseline days is near the t₁₃ value of 0.62% per metric and day', () => {
    const days = 2000;
    const { alerts, compared } = steady(5, days);
    expect(compared).toBe(days);
    const rate = alerts / (3 * days);
    expect(rate).toBeGreaterThan(0.003);
    expect(rate).toBeLessThan(0.01);
  });

  it('steady preliminaries: 60 days at a 6-hour label age against same-age history raise no alert, at the same rate', () => {
    expect(steady(9, 60, 21_600)).toEqual({ alerts: 0, compared: 60 });
    const rate = steady(5, 2000, 21_600).alerts / (3 * 2000);
    expect(rate).toBeGreaterThan(0.003);
    expect(rate).toBeLessThan(0.01);
  });

  it('a step drift in MSE and MAE fires sigma alerts with the baseline figures', () => {
    const random = seededRandom(3);
    const base = history(DAY, 14, (_, day) => [rec(day, { mse: 10 + 0.2 * gaussian(random), mae: 2.5 + 0.02 * gaussian(random) })]);
    const out = evaluateAlerts([rec(DAY, { mse: 14, mae: 3.2 })], base, finalRun(DAY), settings());
    expect(out.alerts.map((a) => [a.metric, a.rule])).toEqual([['mse', 'sigma'], ['mae', 'sigma']]);
    const mse = out.alerts[0]!;
    const values = base.map((b) => b.records[0]!.mse!);
    const { mean, sd } = meanAndSd(values);
    expect(mse).toMatchObject({ value: 14, baseline_mean: mean, baseline_sd: sd, baseline_days: 14, threshold: mean + 3 * sd, labeled_count: 1000, label_age_s: null, stage: 'FINAL', slice_keys: {} });
    expect(mse.message).toContain('eta@v1 [all]: mse 14 is above');
    expect(mse.message).toMatch(/= mean \+ 3·sd \(\d+\.\d+ \+ 3·0\.\d+\) over 14 baseline day\(s\) at finals \(rule sigma\)/);
  });

  it('one bad segment among good ones: only that slice alerts', () => {
    const random = seededRandom(11);
    const regions = ['eu', 'us', 'ap', 'sa'];
    const make = (day: string, bad?: string) => regions.map((region) => rec(day, { slice: { region }, mse: (region === bad ? 25 : 10) + 0.3 * gaussian(random) }));
    const base = history(DAY, 14, (_, day) => make(day));
    const out = evaluateAlerts(make(DAY, 'ap'), base, finalRun(DAY), settings());
    expect(out.compared).toBe(4);
    expect(new Set(out.alerts.map((a) => JSON.stringify(a.slice_keys)))).toEqual(new Set([JSON.stringify({ region: 'ap' })]));
  });

  it('coverage alerts downward; error metrics do not alert downward', () => {
    const base = history(DAY, 10, (back, day) => [rec(day, { mse: 10 + (back % 2) * 0.1, coverage: 0.9 + (back % 2) * 0.01 })]);
    const better = evaluateAlerts([rec(DAY, { mse: 5, coverage: 0.99 })], base, finalRun(DAY), settings());
    expect(better.alerts).toEqual([]);
    const lost = evaluateAlerts([rec(DAY, { mse: 10.05, mae: Math.sqrt(10.05), coverage: 0.5 })], base, finalRun(DAY), settings());
    expect(lost.alerts.map((a) => [a.metric, a.rule])).toEqual([['coverage', 'sigma']]);
    expect(lost.alerts[0]!.threshold).toBeLessThan(0.9);
  });

  it('strict inequalities: a flat baseline alerts only on a real change', () => {
    const base = history(DAY, 8, (_, day) => [rec(day, { mse: 4, mae: 2, coverage: 0.9 })]);
    expect(evaluateAlerts([rec(DAY, { mse: 4, mae: 2, coverage: 0.9 })], base, finalRun(DAY), settings()).alerts).toEqual([]);
    const changed = evaluateAlerts([rec(DAY, { mse: 4.000001, mae: 2, coverage: 0.9 })], base, finalRun(DAY), settings());
    expect(changed.alerts.map((a) => a.metric)).toEqual(['mse']);
  });

  it('pct: value > mean·(1 + p), off by default, per model', () => {
    const base = history(DAY, 8, (back, day) => [rec(day, { mse: back % 2 === 0 ? 8 : 12 }), rec(day, { model: 'basket', mse: back % 2 === 0 ? 8 : 12 })]);
    const today = [rec(DAY, { mse: 12.6, mae: Math.sqrt(10) }), rec(DAY, { model: 'basket', mse: 12.6, mae: Math.sqrt(10) })];
    expect(evaluateAlerts(today, base, finalRun(DAY), settings()).alerts).toEqual([]);
    const perModel = settings({ models: { basket: { sigma: null, pct: 0.25, metrics: ['mse'] } } });
    const out = evaluateAlerts(today, base, finalRun(DAY), perModel);
    expect(out.alerts.map((a) => [a.model_name, a.metric, a.rule, a.threshold])).toEqual([['basket', 'mse', 'pct', 12.5]]);
  });

  it('too few labels: the day compared, and baseline days below the minimum do not count', () => {
    const base = history(DAY, 14, (back, day) => [rec(day, { mse: 10 + (back % 3) * 0.1, labeled: back <= 8 ? 150 : 1000 })]);
    const young = evaluateAlerts([rec(DAY, { mse: 50, labeled: 199 })], base, finalRun(DAY), settings());
    expect(young).toMatchObject({ alerts: [], compared: 0, skipped: { too_few_labeled: 1, too_few_baseline_days: 0, no_label_age_baseline: 0 } });
    // Six baseline days with ≥ 200 labels remain: below --baseline-min-days 7.
    const out = evaluateAlerts([rec(DAY, { mse: 50, labeled: 200 })], base, finalRun(DAY), settings());
    expect(out).toMatchObject({ alerts: [], compared: 0, skipped: { too_few_baseline_days: 1 } });
    expect(evaluateAlerts([rec(DAY, { mse: 50, labeled: 200 })], base, finalRun(DAY), settings({ baselineMinDays: 6 })).alerts.length).toBeGreaterThan(0);
  });

  it('too few baseline days: a new slice is skipped with its reason, never alerted', () => {
    const base = history(DAY, 6, (_, day) => [rec(day, { mse: 10 })]);
    const out = evaluateAlerts([rec(DAY, { mse: 100 }), rec(DAY, { mse: 100, slice: { region: 'new' } })], base, finalRun(DAY), settings());
    expect(out).toMatchObject({ alerts: [], compared: 0, skipped: { too_few_baseline_days: 2 } });
  });

  it('only day-window records count: hourly records (metrics v2 --windows) are ignored on both sides', () => {
    const hourly = (day: string, mse: number): AlertInputRecord => ({ ...rec(day, { mse }), window_end_ts: dayWindow(day).startMicros + 3_600_000_000 });
    // Low hourly baselines: taken by mistake, they would make the day's 10 alert.
    const base = history(DAY, 8, (back, day) => [hourly(day, 1 + back * 0.01), rec(day, { mse: 10 })]);
    const out = evaluateAlerts([rec(DAY, { mse: 10 }), hourly(DAY, 5000)], base, finalRun(DAY), settings());
    expect(out).toMatchObject({ alerts: [], compared: 1 });
  });

  describe('preliminary runs at equal label age (SPEC §5.1, §8)', () => {
    // Labels arrive late for the worst predictions, so young MSE is lower and young coverage lower.
    const AGES = [3600, 21_600, 86_400, 172_800];
    const young = { 3600: { mse: 6, coverage: 0.3 }, 21_600: { mse: 8, coverage: 0.6 }, 86_400: { mse: 9, coverage: 0.8 }, 172_800: { mse: 9.5, coverage: 0.85 } } as Record<number, { mse: number; coverage: number }>;
    const withAges = history(DAY, 14, (back, day) => [
      rec(day, { mse: 10 + (back % 2) * 0.1, coverage: 0.9 + (back % 2) * 0.005 }),
      ...AGES.map((age) => rec(day, { ageS: age, mse: young[age]!.mse + (back % 2) * 0.1, coverage: young[age]!.coverage + (back % 2) * 0.005 })),
    ]);
    const prelim = (ageS: number): AlertRun => ({ stage: 'preliminary', window: dayWindow(DAY), labelAgeS: ageS });

    it('a young preliminary that looks bad against finals does not alert against same-age history', () => {
      // Six hours old: coverage 0.6 would be far below the finals' 0.9.
      const today = [rec(DAY, { mse: 8.05, coverage: 0.6025 })];
      const againstFinals = evaluateAlerts(today, withAges, finalRun(DAY), settings());
      expect(againstFinals.alerts.map((a) => a.metric)).toContain('coverage');
      const out = evaluateAlerts(today, withAges, prelim(21_600 + 1800), settings());
      expect(out).toMatchObject({ alerts: [], compared: 1 });
    });

    it('uses the largest age not above its own, and alerts on a real change at that age', () => {
      const out = evaluateAlerts([rec(DAY, { mse: 12, coverage: 0.8 })], withAges, prelim(86_400 + 7200), settings());
      expect(out.alerts.map((a) => [a.metric, a.label_age_s])).toEqual([['mse', 86_400], ['mae', 86_400]]);
      expect(out.alerts[0]!.baseline_mean).toBeCloseTo(9.05, 12);
    });

    it('the alert carries the age compared at, and its message names it', () => {
      const out = evaluateAlerts([rec(DAY, { mse: 12, coverage: 0.8 })], withAges, prelim(86_400 + 7200), settings());
      expect(out.alerts[0]).toMatchObject({ stage: 'PRELIMINARY', label_age_s: 86_400, baseline_days: 14 });
      expect(out.alerts[0]!.message).toMatch(/over 14 baseline day\(s\) at label age P1D \(rule sigma\)$/);
      expect(out.baselineDaysWithoutLabelAges).toEqual([]);
    });

    it('finals compare with the ordinary records only: label-age and hourly records of the baseline days are left out', () => {
      // Label-age records at MSE 6–9.5 and hourly ones at 1000 would pull the mean far below 10 (or far above).
      const hourly = (day: string): AlertInputRecord => ({ ...rec(day, { mse: 1000, coverage: 0.1 }), window_end_ts: dayWindow(day).startMicros + 3_600_000_000 });
      // Hourly records first: a reader that did not check the window would take them.
      const base = withAges.map((b) => ({ ...b, records: [hourly(b.date), ...b.records] }));
      const quiet = evaluateAlerts([rec(DAY, { mse: 10.1, coverage: 0.9 })], base, finalRun(DAY), settings());
      expect(quiet).toMatchObject({ alerts: [], compared: 1, baselineDaysWithoutLabelAges: [] });
      const loud = evaluateAlerts([rec(DAY, { mse: 11, coverage: 0.9 })], base, finalRun(DAY), settings());
      expect(loud.alerts.map((a) => [a.metric, a.label_age_s, a.baseline_mean])).toEqual([['mse', null, expect.closeTo(10.05, 12)], ['mae', null, expect.any(Number)]]);
      // Label-age records alone are no final baseline.
      const agesOnly = withAges.map((b) => ({ ...b, records: b.records.filter((r) => r.label_age_s !== null) }));
      expect(evaluateAlerts([rec(DAY, { mse: 50 })], agesOnly, finalRun(DAY), settings()).skipped.too_few_baseline_days).toBe(1);
    });

    it('hourly label-age records are ignored too; a record of another window does not stand in for the day', () => {
      const shifted = (r: AlertInputRecord): AlertInputRecord => ({ ...r, window_start_ts: r.window_start_ts + 3_600_000_000, window_end_ts: r.window_start_ts + 7_200_000_000, mse: 0.5, mae: 0.1 });
      const base = withAges.map((b) => ({ ...b, records: [...b.records.filter((r) => r.label_age_s !== null).map(shifted), ...b.records] }));
      expect(evaluateAlerts([rec(DAY, { mse: 8.05, coverage: 0.6025 })], base, prelim(21_600), settings())).toMatchObject({ alerts: [], compared: 1 });
    });

    it('v1 baseline days among v2 ones do not count for a preliminary, and the evaluation names them', () => {
      // Days 1–5 back are v1 (ordinary records only): nine v2 days remain, enough for 7.
      const mixed = withAges.map((b, i) => (i < 5 ? { ...b, records: b.records.filter((r) => r.label_age_s === null) } : b));
      const out = evaluateAlerts([rec(DAY, { mse: 12, coverage: 0.8 })], mixed, prelim(86_400), settings());
      expect(out.baselineDaysWithoutLabelAges).toEqual(mixed.slice(0, 5).map((b) => b.date));
      expect(out.alerts.map((a) => [a.metric, a.baseline_days, a.label_age_s])).toEqual([['mse', 9, 86_400], ['mae', 9, 86_400]]);
      // Eight v1 days: six v2 days remain, below --baseline-min-days 7; the finals of the v1 days are not used instead.
      const mostlyV1 = withAges.map((b, i) => (i < 8 ? { ...b, records: b.records.filter((r) => r.label_age_s === null) } : b));
      const few = evaluateAlerts([rec(DAY, { mse: 50, coverage: 0.1 })], mostlyV1, prelim(86_400), settings());
      expect(few).toMatchObject({ alerts: [], compared: 0, skipped: { too_few_baseline_days: 1, no_label_age_baseline: 0 } });
      expect(few.baselineDaysWithoutLabelAges).toHaveLength(8);
      // A final is not concerned: every day's ordinary record counts.
      expect(evaluateAlerts([rec(DAY, { mse: 10 })], mostlyV1, finalRun(DAY), settings()).baselineDaysWithoutLabelAges).toEqual([]);
    });

    it('what a baseline reader keeps: day-window records, ordinary for finals, ages up to its own for preliminaries; only the alert fields', () => {
      const day = addDays(DAY, -1);
      const window = dayWindow(day);
      const ordinary = rec(day, { mse: 10 });
      const at6h = rec(day, { mse: 8, ageS: 21_600 });
      const at1d = rec(day, { mse: 9, ageS: 86_400 });
      const hour = { ...ordinary, window_end_ts: window.startMicros + 3_600_000_000 };
      expect([ordinary, at6h, at1d, hour].map((r) => usableInBaseline(r, window, finalRun(DAY)))).toEqual([true, false, false, false]);
      expect([ordinary, at6h, at1d, hour].map((r) => usableInBaseline(r, window, prelim(30_000)))).toEqual([true, true, false, false]);
      const wide = { ...at6h, count: 5000, sum_quad_error: 1e9, labels_through_ts: 1 } as AlertInputRecord;
      expect(alertInputOf(wide)).toEqual(at6h);
      expect(alertInputOf({ ...ordinary, label_age_s: undefined })).toEqual(ordinary);
      // A reader that left the older ages out says the day held label ages: it is not reported as v1.
      const kept = withAges.map((b) => ({ ...b, records: b.records.filter((r) => r.label_age_s === null), holdsLabelAges: true }));
      expect(evaluateAlerts([rec(DAY, { mse: 50 })], kept, prelim(1800), settings())).toMatchObject({ baselineDaysWithoutLabelAges: [], skipped: { no_label_age_baseline: 1 } });
    });

    it('one age for every baseline day: the largest not above its own that enough days hold', () => {
      // Three days also recorded a 12-hour age (a --label-ages change): too few for 7, so all compare at 6 hours.
      const extra = withAges.map((b, i) => (i < 3 ? { ...b, records: [...b.records, rec(b.date, { ageS: 43_200, mse: 100, coverage: 0.7 })] } : b));
      const out = evaluateAlerts([rec(DAY, { mse: 8.05, coverage: 0.6025 })], extra, prelim(50_000), settings());
      expect(out).toMatchObject({ alerts: [], compared: 1 });
      const drift = evaluateAlerts([rec(DAY, { mse: 9, coverage: 0.6025 })], extra, prelim(50_000), settings());
      expect(drift.alerts.map((a) => [a.metric, a.label_age_s, a.baseline_days, a.baseline_mean])).toEqual([['mse', 21_600, 14, expect.closeTo(8.05, 12)], ['mae', 21_600, 14, expect.any(Number)]]);
      // With seven such days, 12 hours is the age.
      const seven = withAges.map((b, i) => (i < 7 ? { ...b, records: [...b.records, rec(b.date, { ageS: 43_200, mse: 8.5, coverage: 0.7 })] } : b));
      expect(evaluateAlerts([rec(DAY, { mse: 9, coverage: 0.7 })], seven, prelim(50_000), settings()).alerts.map((a) => [a.metric, a.label_age_s, a.baseline_days])).toEqual([['mse', 43_200, 7], ['mae', 43_200, 7]]);
    });

    it('baseline days with too few labels at that age do not count, and do not send the comparison to a younger age', () => {
      const thin = withAges.map((b, i) => ({ ...b, records: b.records.map((r) => (r.label_age_s === 21_600 && i < 8 ? { ...r, labeled_count: 150 } : r)) }));
      // Six days keep 200 labels at 6 hours; every day has them at 1 hour, but the run is 6 hours old.
      expect(evaluateAlerts([rec(DAY, { mse: 50 })], thin, prelim(21_600), settings())).toMatchObject({ alerts: [], compared: 0, skipped: { too_few_baseline_days: 1 } });
    });

    it('without label-age records (metrics v1 baselines) a preliminary is skipped, never compared with finals', () => {
      const finalsOnly = history(DAY, 14, (_, day) => [rec(day, { mse: 10 })]);
      const out = evaluateAlerts([rec(DAY, { mse: 50 })], finalsOnly, prelim(21_600), settings());
      expect(out).toMatchObject({ alerts: [], compared: 0, skipped: { no_label_age_baseline: 1 } });
      expect(out.baselineDaysWithoutLabelAges).toEqual(finalsOnly.map((b) => b.date));
      // A slice with no baseline at all is new, not v1: too few baseline days.
      expect(evaluateAlerts([rec(DAY, { mse: 50, slice: { region: 'new' } })], withAges, prelim(21_600), settings()).skipped.too_few_baseline_days).toBe(1);
    });

    it('younger than every recorded age (or before the day ended): skipped for the same reason', () => {
      const out = evaluateAlerts([rec(DAY, { mse: 50 })], withAges, prelim(1800), settings());
      expect(out.skipped.no_label_age_baseline).toBe(1);
      expect(evaluateAlerts([rec(DAY, { mse: 50 })], withAges, prelim(-3600), settings()).skipped.no_label_age_baseline).toBe(1);
    });
  });

  it('label ages read as --label-ages spells them', () => {
    expect([3600, 21_600, 86_400, 93_600, 90, 0, -3600, 604_800 + 61].map(formatLabelAge)).toEqual(['PT1H', 'PT6H', 'P1D', 'P1DT2H', 'PT1M30S', 'PT0S', '-PT1H', 'P7DT1M1S']);
  });
});
