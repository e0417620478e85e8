/**
 * `model-metrics run`: one day, one stage. A thin entry point over the daily pipeline.
 */
import { type DayRequest, type RunContext, runDay } from '../src/pipeline/daily.js';
import type { DayResult } from '../src/run-results.js';

/** Runs one day and stage; throws NotReadyError (exit 3) while a final window is open. */
export async function dailyRun(ctx: RunContext, request: DayRequest): Promise<DayResult> {
  return runDay(ctx, request);
}
