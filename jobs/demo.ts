/**
 * `model-metrics demo`: sample data in a local folder, the preliminary run of each day as the
 * CronJob would make it the next morning, the final runs once every window has closed, and the
 * two report tables side by side. No server, no credentials.
 */
import { addDays } from '../src/config/dates.js';
import { generateSample, type SampleSummary } from '../src/demo/generate.js';
import { dayWindow } from '../src/join/policy.js';
import type { RunContext } from '../src/pipeline/daily.js';
import { type Report, buildReport } from './report.js';
import { type DayOutcome, runDayOutcome } from './outcome.js';

/** The demo's fixed calendar: five weekdays, so every run of the demo prints the same numbers. */
export const DEMO_FROM = '2026-03-02';
export const DEMO_DAYS = 5;
const HOUR_MICROS = 3_600_000_000;

/** Everything the demo did. */
export interface DemoResult {
  sample: SampleSummary;
  outcomes: DayOutcome[];
  preliminary: Report;
  final: Report;
}

/** Generates the sample into the context's stores, runs both stages and builds both reports. */
export async function demo(ctx: RunContext, predictionsPerDay = 20_000): Promise<DemoResult> {
  const sample = await generateSample(ctx.stores.predictions, ctx.stores.labels, { from: DEMO_FROM, days: DEMO_DAYS, predictionsPerDay });
  const to = addDays(DEMO_FROM, DEMO_DAYS - 1);
  const outcomes: DayOutcome[] = [];
  for (let d = 0; d < DEMO_DAYS; d++) {
    const date = addDays(DEMO_FROM, d);
    // The next morning at 06:00 UTC, as a daily CronJob would run it.
    outcomes.push(await runDayOutcome(ctx, { date, stage: 'preliminary', asOfMicros: dayWindow(date).endMicros + 6 * HOUR_MICROS }));
  }
  const finalAsOf = dayWindow(addDays(to, 1)).startMicros + ctx.config.labelWindow.micros + HOUR_MICROS;
  for (let d = 0; d < DEMO_DAYS; d++) {
    outcomes.push(await runDayOutcome(ctx, { date: addDays(DEMO_FROM, d), stage: 'final', asOfMicros: finalAsOf }));
  }
  const preliminary = await buildReport(ctx.stores.metrics, { from: DEMO_FROM, to, stage: 'preliminary', by: 'day' });
  const final = await buildReport(ctx.stores.metrics, { from: DEMO_FROM, to, stage: 'final', by: 'day' });
  return { sample, outcomes, preliminary, final };
}
