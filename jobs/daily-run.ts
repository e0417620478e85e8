/**
 * `model-metrics run`: one day, one stage. A thin entry point over the daily pipeline; with
 * `--shards K` one phase of a day split across pods, or all three phases as local processes
 * (SPEC §9, src/pipeline/sharded.ts).
 */
import type { ShardRun } from '../src/config/resolve.js';
import { type DayRequest, type RunContext, runDay } from '../src/pipeline/daily.js';
import { type PhaseResult, runJoinPhase, runPartitionPhase } from '../src/pipeline/sharded.js';
import { runShardsLocally } from '../src/pipeline/sharded-runner.js';
import type { DayResult } from '../src/run-results.js';

/** How the children of a local sharded run are started: the parent's options as flags, and the environment. */
export interface LocalShards {
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  stderr: (chunk: Buffer) => void;
}

/** Runs one day and stage; throws NotReadyError (exit 3) while a final window is open or a phase's inputs are not done. */
export async function dailyRun(ctx: RunContext, request: DayRequest, shardRun?: ShardRun, local?: LocalShards): Promise<DayResult | PhaseResult> {
  if (shardRun === undefined) return runDay(ctx, request);
  switch (shardRun.phase) {
    case 'partition':
      return runPartitionPhase(ctx, request, { shards: shardRun.shards, index: shardRun.index! });
    case 'join':
      return runJoinPhase(ctx, request, { shards: shardRun.shards, index: shardRun.index! });
    case 'commit':
      return runDay(ctx, request, { shards: shardRun.shards });
    case undefined:
      return runShardsLocally({ shards: shardRun.shards, args: local!.args, env: local!.env, stderr: local!.stderr, signal: ctx.signal, logger: ctx.logger });
  }
}
