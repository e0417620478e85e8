/**
 * The outcome of one day inside a multi-day command (backfill, scheduled): a result, "not ready",
 * or a failure with its error code — so one bad day is reported and does not hide the others.
 */
import { ExitCode, InterruptedError, ModelMetricsError, describeError, exitCodeOf } from '../errors.js';
import { type DayRequest, type RunContext, runDay } from './daily.js';
import type { DayOutcome } from '../run-results.js';

export type { DayOutcome } from '../run-results.js';
import { sanitizeForLog } from '../observability/log.js';

/** Runs a day and turns any error into an outcome (errors are also logged with their code). */
export async function runDayOutcome(ctx: RunContext, request: DayRequest): Promise<DayOutcome> {
  try {
    const result = await runDay(ctx, request);
    return { date: request.date, stage: request.stage, status: result.status, result };
  } catch (error) {
    // A signal stops the whole command, not just this day.
    if (error instanceof InterruptedError) throw error;
    const notReady = exitCodeOf(error) === ExitCode.notReady;
    const code = error instanceof ModelMetricsError ? error.code : 'E_INTERNAL';
    const message = sanitizeForLog(describeError(error));
    ctx.logger[notReady ? 'info' : 'error']({ event: notReady ? 'day_not_ready' : 'day_failed', date: request.date, stage: request.stage, code, error: message }, message);
    return { date: request.date, stage: request.stage, status: notReady ? 'not_ready' : 'failed', code, error: message };
  }
}

/** The exit code of several days: 1 if any failed, else 3 if any was not ready, else 0. */
export function combinedExitCode(outcomes: readonly DayOutcome[]): number {
  if (outcomes.some((o) => o.status === 'failed')) return ExitCode.failed;
  if (outcomes.some((o) => o.status === 'not_ready')) return ExitCode.notReady;
  return ExitCode.ok;
}
