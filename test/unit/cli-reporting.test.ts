import { describe, expect, it } from 'vitest';
import { shardDates } from '../../jobs/backfill.js';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import { reportingOf, shardOf } from '../../src/cli/reporting.js';
import { redactedUrl } from '../../src/observability/push-target.js';
import { stageFigures, stageRegistry } from '../../src/observability/pushgateway.js';
import type { DayResult } from '../../src/pipeline/daily.js';

const result = (date: string, stage: 'preliminary' | 'final', n: number): DayResult => ({
  date,
  stage,
  status: 'done',
  as_of: '2026-03-10T00:00:00.000000Z',
  labels_through: '2026-03-10T00:00:00.000000Z',
  prediction_objects: 2,
  label_objects: 3,
  skipped_objects: 1,
  predictions_read: n,
  predictions_kept: n - 1,
  labeled: n - 2,
  label_coverage: 0.5,
  curated_files: 1,
  metrics_records: 7,
  curated_manifest: 'c',
  metrics_manifest: 'm',
  duration_s: 1,
});

describe('backfill shards', () => {
  const range = ['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6'];

  it('deals days round-robin and every day to exactly one shard', () => {
    expect(shardDates(range, 0, 3)).toEqual(['d0', 'd3', 'd6']);
    expect(shardDates(range, 1, 3)).toEqual(['d1', 'd4']);
    expect(shardDates(range, 2, 3)).toEqual(['d2', 'd5']);
    const all = [0, 1, 2].flatMap((i) => shardDates(range, i, 3)).sort();
    expect(all).toEqual(range);
    expect(shardDates(range, 9, 10)).toEqual([]);
  });

  it('takes the index from --shard-index, else from JOB_COMPLETION_INDEX', () => {
    expect(shardOf({}, {})).toBeUndefined();
    expect(shardOf({ 'shard-count': 4, 'shard-index': 3 }, { JOB_COMPLETION_INDEX: '1' })).toEqual({ index: 3, count: 4 });
    expect(shardOf({ 'shard-count': 4 }, { JOB_COMPLETION_INDEX: '2' })).toEqual({ index: 2, count: 4 });
  });

  it.each([
    [{ 'shard-index': 1 }, {}, /--shard-index needs --shard-count/],
    [{ 'shard-count': 4 }, {}, /needs --shard-index I, or JOB_COMPLETION_INDEX/],
    [{ 'shard-count': 4 }, { JOB_COMPLETION_INDEX: 'two' }, /got "two"/],
    [{ 'shard-count': 4, 'shard-index': 4 }, {}, /from 0 to 3/],
    [{ 'shard-count': 4, 'shard-index': -1 }, {}, /from 0 to 3/],
    [{ 'shard-count': 0 }, {}, /--shard-count must be from 1/],
  ])('refuses %j with env %j', (raw, env, message) => {
    expect(() => shardOf(raw, env)).toThrow(message);
    try {
      shardOf(raw, env);
    } catch (error) {
      expect((error as { code?: string }).code).toBe('E_USAGE');
    }
  });
});

describe('reporting options', () => {
  it('accepts a pushgateway URL and a job name', () => {
    const reporting = reportingOf({ pushgateway: 'http://pg:9091', 'pushgateway-job': 'mm_prod' }, 'run', ['final']);
    expect(reporting.push).toEqual({ url: 'http://pg:9091', job: 'mm_prod', timeoutMs: 10_000 });
    expect(reporting.summaryFile).toBeUndefined();
  });

  it.each([
    [{ pushgateway: 'pg:9091' }, /--pushgateway must be an http\(s\) URL/],
    [{ pushgateway: 'ftp://pg' }, /--pushgateway must be an http\(s\) URL/],
    [{ pushgateway: 'http://pg:9091', 'pushgateway-job': 'a/b' }, /--pushgateway-job must start/],
    [{ 'pushgateway-job': 'x' }, /--pushgateway-job needs --pushgateway/],
    [{ 'summary-file': '/no/such/folder/summary.json' }, /--summary-file .*does not exist or is not writable/],
  ])('refuses %j', (raw, message) => {
    expect(() => reportingOf(raw, 'run', ['final'])).toThrow(message);
  });

  it('never echoes credentials of a bad pushgateway URL', () => {
    expect(() => reportingOf({ pushgateway: 'ftp://user:hunter2@pg' }, 'run', ['final'])).toThrow(/^(?!.*hunter2)/s);
    expect(redactedUrl('https://user:hunter2@pg.example:9091/base')).toBe('https://pg.example:9091/base');
  });
});

describe('pushed run metrics', () => {
  const outcomes: DayOutcome[] = [
    { date: '2026-03-01', stage: 'final', status: 'done', result: result('2026-03-01', 'final', 100) },
    { date: '2026-03-02', stage: 'final', status: 'done', result: result('2026-03-02', 'final', 50) },
    { date: '2026-03-03', stage: 'final', status: 'not_ready', code: 'E_NOT_READY', error: 'window open' },
    { date: '2026-03-09', stage: 'preliminary', status: 'failed', code: 'E_STORAGE', error: 'boom' },
  ];
  const run = { command: 'scheduled', stages: ['preliminary', 'final'] as const, outcomes, exitCode: 0, durationSeconds: 12.5, finishedAtMs: 1_770_000_000_000 };

  it('sums each stage on its own', () => {
    const final = stageFigures(run, 'final');
    expect(final.days).toEqual({ done: 2, already_done: 0, not_ready: 1, failed: 0 });
    expect(final.predictionsRead).toBe(150);
    expect(final.labeled).toBe(146);
    expect(final.predictionObjects + final.labelObjects).toBe(10);
    expect(final.succeeded).toBe(true);
    const preliminary = stageFigures(run, 'preliminary');
    expect(preliminary.days.failed).toBe(1);
    expect(preliminary.predictionsRead).toBe(0);
    expect(preliminary.succeeded).toBe(false);
  });

  it('sets last_success only for a stage that succeeded', async () => {
    const finalText = await stageRegistry(run, 'final').metrics();
    expect(finalText).toContain('model_metrics_last_success_timestamp_seconds 1770000000');
    expect(finalText).toContain('model_metrics_days{status="not_ready"} 1');
    expect(finalText).toContain('model_metrics_predictions_read 150');
    expect(finalText).toContain('model_metrics_run_duration_seconds 12.5');
    const preliminaryText = await stageRegistry(run, 'preliminary').metrics();
    expect(preliminaryText).not.toContain('last_success');
    expect(preliminaryText).toContain('model_metrics_days{status="failed"} 1');
    const failedRun = await stageRegistry({ ...run, exitCode: 1 }, 'final').metrics();
    expect(failedRun).not.toContain('last_success');
    expect(failedRun).toContain('model_metrics_run_exit_code 1');
  });
});
