/**
 * The outcome of one day inside a multi-day command (backfill, scheduled): a result, "not ready",
 * or a failure with its error code — so one bad day is reported and does not hide the others.
 */
import { ExitCode, InterruptedError, ModelMetricsError, describeError, exitCodeOf } from '../errors.js';
import { type DayRequest, type DayResult, type RunContext, runDay } from './daily.js';
import { sanitizeForLog } from '../observability/log.js';

/** One day's outcome. */
export type DayOutcome =
  | { date: string; stage: DayRequest['stage']; status: 'done' | 'already_done'; result: DayResult }
  | { date: string; stage: DayRequest['stage']; status: 'not_ready' | 'failed'; code: string; error: string };

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
