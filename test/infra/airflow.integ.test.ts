/**
 * The Airflow DAG's commands, run (issue 4): model_metrics_commands.py renders them for sample data
 * intervals and the real CLI runs each on a local sample dataset, as the pod would (options from the
 * deployment's config file): accepted (never exit 2), the day done, the summary written where
 * KubernetesPodOperator reads XCom. The final's date is the latest ready one (the next day is refused
 * with exit 3), and the backfill shards together cover the range once. The sharded DAG's commands
 * (partition and join per shard, then commit) run too, and publish the day.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runCli } from '../helpers/cli.js';
import { INTERVALS, PRELUDE, XCOM_RETURN_FILE, python, renderDaily, renderSharded } from '../helpers/airflow-commands.js';
import {
  CLI_TESTS_TIMEOUT_MS,
  SAMPLE_FROM,
  flagValue,
  repoPath,
  sampleDays,
  type SampleWorkspace,
  sampleWorkspace,
} from '../helpers/infra-helpers.js';

describe('the rendered commands, run by the real CLI', { timeout: CLI_TESTS_TIMEOUT_MS }, () => {
  let workspace: SampleWorkspace;
  beforeAll(async () => {
    workspace = await sampleWorkspace('airflow');
  });
  afterAll(() => workspace?.remove());

  /**
   * Runs a rendered command as the pod would (options from the deployment's config file), with
   * KubernetesPodOperator's /airflow/xcom emptyDir played by the temp folder; returns the summary it wrote.
   */
  async function runRendered(args: readonly string[], name: string, at: SampleWorkspace = workspace): Promise<{ code: number | null; summary: any; describe: string }> {
    const summaryFile = join(at.temp, `${name}.json`);
    const mapped = args.map((arg) => (arg === XCOM_RETURN_FILE ? summaryFile : arg));
    expect(mapped, 'the command writes the XCom summary').toContain(summaryFile);
    const result = await runCli(mapped, {
      MODEL_METRICS_CONFIG: repoPath('infra', 'kubernetes', 'base', 'config.yaml'),
      MODEL_METRICS_ROOT: at.root,
      TMPDIR: at.temp,
      PATH: process.env.PATH ?? '',
    });
    expect(result.nonJsonStderr).toEqual([]);
    const summary = existsSync(summaryFile) ? JSON.parse(readFileSync(summaryFile, 'utf8')) : undefined;
    return { code: result.code, summary, describe: describeRun(result) };
  }

  it.each([['P7D', ['preliminary', 'final']], ['PT36H', ['final']]] as const)(
    'accepts the daily commands (window %s): each day done, the summary pushed to XCom',
    async (window, stages) => {
      for (const [index, rendered] of renderDaily(window).entries()) {
        for (const stage of stages) {
          const args = rendered[stage];
          const run = await runRendered(args, `${window}-${index}-${stage}`);
          const date = flagValue(args, '--date');
          if (!sampleDays().includes(date!)) {
            // A day the sample has no predictions partition for is not ready (SPEC §3): accepted, nothing written.
            expect(run.code, run.describe).toBe(3);
            expect(run.summary, run.describe).toMatchObject({ status: 'not_ready', reason: 'no_predictions_partition' });
            continue;
          }
          expect(run.code, run.describe).toBe(0);
          expect(run.summary, run.describe).toMatchObject({ date, stage, status: expect.stringMatching(/^(done|already_done)$/) });
        }
      }
    },
  );

  it('finalises the latest ready day: the day after it is not ready yet (exit 3)', async () => {
    const final = renderDaily('P7D')[1]!.final;
    const nextDay = final.map((arg) => (arg === '2026-03-02' ? '2026-03-03' : arg));
    expect(nextDay).not.toEqual(final);
    const run = await runRendered(nextDay, 'next-day');
    expect(run.code, run.describe).toBe(3);
    expect(run.summary, 'the summary is written whatever the outcome').toMatchObject({ status: 'not_ready', exit_code: 3 });
  });

  it('accepts the backfill shards, which cover the range once', async () => {
    const to = sampleDays().at(-1)!;
    const shards = python<string[][]>(
      `${PRELUDE}
print(json.dumps(c.backfill_shards(date.fromisoformat(request["from"]), date.fromisoformat(request["to"]), "final", 2, instant("2026-03-20T00:00:00Z"))))`,
      { from: SAMPLE_FROM, to },
    );
    expect(shards).toHaveLength(2);
    const days: string[] = [];
    for (const [index, args] of shards.entries()) {
      const run = await runRendered(args, `backfill-${index}`);
      expect(run.code, run.describe).toBe(0);
      expect(Array.isArray(run.summary), run.describe).toBe(true);
      days.push(...(run.summary as Array<{ date: string; status: string }>).map((o) => o.date));
    }
    expect(days.sort()).toEqual(sampleDays());
  });

  // The final of 2026-03-02 and the preliminary of 2026-03-09 (a day the sample lacks: exit 3 at every phase).
  const sharded = renderSharded(INTERVALS[1], 2);

  it('runs the sharded DAG\'s final: every partition and join shard, then commit publishes the day', async () => {
    // A fresh sample: the day is computed by the shards, not found done by the tests above.
    const fresh = await sampleWorkspace('airflow-sharded');
    try {
      const { partition, join: joins, commit } = sharded.final;
      for (const [index, args] of [...partition, ...joins].entries()) {
        const run = await runRendered(args, `sharded-${index}`, fresh);
        expect(run.code, run.describe).toBe(0);
      }
      const run = await runRendered(commit, 'sharded-commit', fresh);
      expect(run.code, run.describe).toBe(0);
      expect(run.summary, run.describe).toMatchObject({ date: '2026-03-02', stage: 'final', status: 'done' });
    } finally {
      await fresh.remove();
    }
    // The preliminary's day has no predictions partition: not ready (exit 3, the task waits and retries).
    const early = await runRendered(sharded.preliminary.partition[0]!, 'sharded-preliminary');
    expect(early.code, early.describe).toBe(3);
  });
});
