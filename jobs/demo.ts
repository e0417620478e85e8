/**
 * `model-metrics demo`: sample data in a local folder, the preliminary run of each day as the
 * CronJob would make it the next morning, the final runs once every window has closed, and the
 * two report tables side by side. No server, no credentials. Over its last days one segment of one
 * model degrades (DEMO_DRIFT), so the finals of those days raise alerts (SPEC §8) against the two
 * weeks before.
 */
import { addDays } from '../src/calendar.js';
import type { AlertRecord } from '../src/alerts/policy.js';
import { generateSample, type SampleDrift, type SampleSummary } from '../src/demo/generate.js';
import { dayWindow } from '../src/join/policy.js';
import type { RunContext } from '../src/pipeline/daily.js';
import { type Report, buildReport } from './report.js';
import { type DayOutcome, runDayOutcome } from '../src/pipeline/outcome.js';

/** The demo's fixed calendar: two weeks, so every run of the demo prints the same numbers and the last days have a baseline. */
export const DEMO_FROM = '2026-03-02';
export const DEMO_DAYS = 14;
/** The seeded degradation: delivery-eta in region eu-west, its error noise ×2.5 over the last three days. */
export const DEMO_DRIFT: SampleDrift = { model: 'delivery-eta', segmentKey: 'region', segmentValue: 'eu-west', fromDay: DEMO_DAYS - 3, noiseFactor: 2.5 };
const HOUR_MICROS = 3_600_000_000;

/** Everything the demo did. */
export interface DemoResult {
  sample: SampleSummary;
  outcomes: DayOutcome[];
  preliminary: Report;
  final: Report;
  /** The seeded drift and its first day. */
  drift: SampleDrift & { from: string };
  /** The alerts the runs raised (the finals of the drift's days, SPEC §8). */
  alerts: AlertRecord[];
  /** Where the HTML report went, when the demo was given a writer. */
  htmlReport?: string;
}

/** Writes the HTML report of a range of the metrics dataset to a local file (the report command's writer). */
export type HtmlReportWriter = (ctx: RunContext, request: { from: string; to: string; out: string }) => Promise<void>;

/** Demo options: the sample size, and the HTML report to end with. */
export interface DemoOptions {
  predictionsPerDay?: number;
  /** With `htmlOut`, the demo ends by writing the HTML report there. */
  writeHtmlReport?: HtmlReportWriter;
  htmlOut?: string;
}

/**
 * The demo's alert rule: sigma k = 5. It compares about a hundred slice-metrics a day, and at k = 3
 * (about 0.6% false alarms per comparison over a two-week baseline) it would raise a chance alert
 * every other day beside the seeded one (k = 4: still about one over its days, on coverage); production configs pick k per model (README, Alerts).
 */
export const DEMO_SIGMA = 5;

function withDemoRules(ctx: RunContext): RunContext {
  const alerting = ctx.config.alerting;
  if (alerting === undefined) return ctx;
  return { ...ctx, config: { ...ctx.config, alerting: { ...alerting, defaults: { ...alerting.defaults, sigma: DEMO_SIGMA } } } };
}

/** Generates the sample into the context's stores, runs both stages and builds both reports. */
export async function demo(given: RunContext, options: DemoOptions = {}): Promise<DemoResult> {
  const ctx = withDemoRules(given);
  const sample = await generateSample(ctx.stores.predictions, ctx.stores.labels, { from: DEMO_FROM, days: DEMO_DAYS, predictionsPerDay: options.predictionsPerDay ?? 12_000, drift: DEMO_DRIFT });
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
  const alerts = outcomes.flatMap((o) => ('result' in o ? (o.result.alerts?.alerts ?? []) : []));
  const result: DemoResult = { sample, outcomes, preliminary, final, drift: { ...DEMO_DRIFT, from: addDays(DEMO_FROM, DEMO_DRIFT.fromDay) }, alerts };
  if (options.writeHtmlReport !== undefined && options.htmlOut !== undefined) {
    await options.writeHtmlReport(ctx, { from: DEMO_FROM, to, out: options.htmlOut });
    result.htmlReport = options.htmlOut;
  }
  return result;
}

/** Alerts the demo prints; the rest are in the files. */
const DEMO_ALERTS_SHOWN = 12;

/** The demo's closing lines: the drift it seeded and the alerts that caught it. */
export function describeDemoAlerts(result: Pick<DemoResult, 'drift' | 'alerts'>, dir: string): string[] {
  const d = result.drift;
  return [
    `seeded drift: ${d.model} ${d.segmentKey}=${d.segmentValue}, error noise ×${d.noiseFactor} from ${d.from} on`,
    `${result.alerts.length} alert(s) raised at sigma k = ${DEMO_SIGMA} (files under ${dir}/alerts/stage=…/dt=…/alerts.avro; preliminaries are compared at equal label age with the finals' label-age records, and the demo runs its preliminaries before any final exists, so only finals alert here):`,
    ...result.alerts.slice(0, DEMO_ALERTS_SHOWN).map((a) => `  ALERT ${a.message}`),
    ...(result.alerts.length > DEMO_ALERTS_SHOWN ? [`  … and ${result.alerts.length - DEMO_ALERTS_SHOWN} more (every one in the files above, and in the --json summary)`] : []),
  ];
}
