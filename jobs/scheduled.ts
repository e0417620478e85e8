/**
 * `model-metrics scheduled`: the CronJob entry point (SPEC §6). Preliminary for yesterday, and final
 * for every day in the lookback whose label window has closed and that has no final yet. The
 * lookback bounds the scan, so a cluster that was down for a week catches up and a new deployment
 * does not crawl years of history.
 */
import { addDays, dateOfMicros, dayWindow } from '../src/calendar.js';
import { SUCCESS_FILE, inputPartition, outputPartition } from '../src/dataset/layout.js';
import { finalReadyAtMicros } from '../src/join/policy.js';
import type { RunContext } from '../src/pipeline/daily.js';
import { runDayOutcome } from '../src/pipeline/outcome.js';
import type { DayOutcome } from '../src/run-results.js';

/** When and how far back. */
export interface ScheduledRequest {
  asOfMicros: number;
  lookbackMicros: number;
}

/** The days a scheduled run would compute, oldest final first, then yesterday's preliminary. */
export async function planScheduled(ctx: RunContext, request: ScheduledRequest): Promise<Array<{ date: string; stage: 'preliminary' | 'final' }>> {
  const today = dateOfMicros(request.asOfMicros);
  const yesterday = addDays(today, -1);
  const first = dateOfMicros(request.asOfMicros - request.lookbackMicros);
  const plan: Array<{ date: string; stage: 'preliminary' | 'final' }> = [];
  for (let date = first; date <= yesterday; date = addDays(date, 1)) {
    if (finalReadyAtMicros(dayWindow(date), ctx.config.labelWindow.micros) > request.asOfMicros) continue;
    if ((await ctx.stores.metrics.head(`${outputPartition('final', date)}${SUCCESS_FILE}`)) !== undefined) continue;
    // Days before the first prediction ever written have nothing to finalise.
    if (!(await ctx.stores.predictions.hasAny(inputPartition(date)))) continue;
    plan.push({ date, stage: 'final' });
  }
  plan.push({ date: yesterday, stage: 'preliminary' });
  return plan;
}

/** Runs the plan one day at a time; outcomes in plan order. */
export async function scheduled(ctx: RunContext, request: ScheduledRequest): Promise<DayOutcome[]> {
  const plan = await planScheduled(ctx, request);
  ctx.logger.info({ event: 'scheduled_plan', days: plan }, `scheduled: ${plan.length} run(s)`);
  const outcomes: DayOutcome[] = [];
  for (const step of plan) outcomes.push(await runDayOutcome(ctx, { ...step, asOfMicros: request.asOfMicros }));
  return outcomes;
}
