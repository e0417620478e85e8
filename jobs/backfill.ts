/**
 * `model-metrics backfill`: every date of a range, up to `concurrency` dates at once. Each date's
 * outcome is reported; one failed date does not stop the others, and the exit code says whether
 * all succeeded (SPEC §6).
 */
import { mapBounded } from '../src/concurrency.js';
import { dateRange } from '../src/calendar.js';
import { baselineGate } from '../src/alerts/ordering.js';
import type { RunContext } from '../src/pipeline/daily.js';
import { runDayOutcome } from '../src/pipeline/outcome.js';
import type { DayOutcome, Stage } from '../src/run-results.js';

/** What to backfill. */
export interface BackfillRequest {
  from: string;
  to: string;
  stage: Stage;
  asOfMicros: number;
  /** Dates computed at once; each holds its own label index in memory. */
  concurrency: number;
  /** This worker's share of the range (Kubernetes Indexed Jobs); all of it when undefined. */
  shard?: { index: number; count: number } | undefined;
}

/** The dates of shard `index` of `count`: day k of the range belongs to shard k mod count (round-robin, so shards stay even). */
export function shardDates(dates: readonly string[], index: number, count: number): string[] {
  return dates.filter((_, k) => k % count === index);
}

/** Runs the range; outcomes in date order. */
export async function backfill(ctx: RunContext, request: BackfillRequest): Promise<DayOutcome[]> {
  const range = dateRange(request.from, request.to);
  const dates = request.shard === undefined ? range : shardDates(range, request.shard.index, request.shard.count);
  const shard = request.shard === undefined ? {} : { shard_index: request.shard.index, shard_count: request.shard.count };
  ctx.logger.info({ event: 'backfill_started', from: request.from, to: request.to, days: dates.length, stage: request.stage, concurrency: request.concurrency, ...shard }, 'backfill started');
  // With several dates in flight their progress counters would interleave: only a single-date run draws the line.
  // Days in flight share the process's --memory-budget (SPEC §9): each gets its 1/concurrency share.
  const shared = { ...ctx, config: { ...ctx.config, memoryBudget: Math.floor(ctx.config.memoryBudget / request.concurrency) } };
  const dayCtx = request.concurrency > 1 ? { ...shared, progress: undefined } : shared;
  // Alerts of a day wait for the earlier days of this shard that its baseline needs (SPEC §8).
  const gate = baselineGate(dates, request.stage, ctx.config.alerting?.baselineDays ?? 0);
  const gatedCtx = { ...dayCtx, baselineReady: (date: string) => gate.ready(date) };
  const outcomes = await mapBounded(dates, request.concurrency, (date) =>
    runDayOutcome(gatedCtx, { date, stage: request.stage, asOfMicros: request.asOfMicros }).finally(() => gate.finished(date)),
  );
  ctx.logger.info({ event: 'backfill_finished', days: outcomes.length, failed: outcomes.filter((o) => o.status === 'failed').length }, 'backfill finished');
  return outcomes;
}
