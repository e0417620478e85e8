import { describe, expect, it } from 'vitest';
import type { DayOutcome } from '../../src/pipeline/outcome.js';
import type { AlertRecord } from '../../src/alerts/policy.js';
import { describeAlerts } from '../../src/alerts/report.js';
import { stageFigures, stageRegistry } from '../../src/observability/pushgateway.js';

const alert = (metric: AlertRecord['metric']): AlertRecord => ({
  window_start_ts: 0, window_end_ts: 86_400_000_000, stage: 'FINAL', model_name: 'eta', model_version: 'v1', slice_keys: { region: 'eu' }, metric, value: 2, baseline_mean: 1, baseline_sd: 0.1,
  baseline_days: 9, rule: 'sigma', threshold: 1.3, labeled_count: 500, label_age_s: null, message: `eta@v1 [region=eu]: ${metric} 2 is above 1.3`,
});
const day = (status: 'done' | 'already_done', alerts: AlertRecord[]): DayOutcome => ({
  date: '2026-03-01', stage: 'final', status,
  result: { alerts: { manifest: 'file:///a/_SUCCESS', fired: alerts.length, compared: 4, skipped: { too_few_labeled: 2, too_few_baseline_days: 1, no_label_age_baseline: 0 }, baseline_days_found: 9, baseline_days_without_label_ages: [], alerts } } as never,
});

describe('alerts in the Pushgateway push and the summary', () => {
  const run = { command: 'backfill', stages: ['final' as const], outcomes: [day('done', [alert('mse'), alert('mae')]), day('already_done', [alert('mse')])], exitCode: 4, durationSeconds: 1, finishedAtMs: 0 };

  it('gauges alerts by metric (committed days included) and skipped slices by reason', async () => {
    const figures = stageFigures({ ...run, outcomes: run.outcomes.map((o) => ({ ...o, result: { ...(o as { result: object }).result, prediction_objects: 0, label_objects: 0, skipped_objects: 0, predictions_read: 0, predictions_kept: 0, labeled: 0, curated_files: 0, metrics_records: 0 } })) as DayOutcome[] }, 'final');
    expect(figures.alerts).toEqual({ mse: 2, mae: 1, coverage: 0 });
    expect(figures.alertSlicesSkipped).toEqual({ too_few_labeled: 4, too_few_baseline_days: 2, no_label_age_baseline: 0 });
    const text = await stageRegistry({ ...run, outcomes: [] }, 'final').metrics();
    expect(text).toContain('model_metrics_alerts{metric="mse"} 0');
    expect(text).toContain('model_metrics_alert_slices_skipped{reason="no_label_age_baseline"} 0');
  });

  it('the human summary names the counts, the skip reasons and each alert', () => {
    const first = run.outcomes[0]!;
    const lines = describeAlerts('result' in first ? first.result.alerts : undefined);
    expect(lines[0]).toBe('  alerts: 2 fired, 4 slice(s) compared, skipped: 2 too few labeled, 1 too few baseline days (9 baseline day(s) found) — file:///a/_SUCCESS');
    expect(lines.slice(1)).toEqual(['    ALERT eta@v1 [region=eu]: mse 2 is above 1.3', '    ALERT eta@v1 [region=eu]: mae 2 is above 1.3']);
  });

  it('a preliminary names the baseline days without label-age records, which did not count', () => {
    const first = run.outcomes[0]!;
    const alerts = 'result' in first ? first.result.alerts! : undefined;
    const lines = describeAlerts({ ...alerts!, baseline_days_without_label_ages: ['2026-02-28', '2026-02-27'] });
    expect(lines[1]).toBe('  2 baseline day(s) hold no label-age records and do not count for this preliminary (metrics v1, or finals written before label ages; rerun those finals with this version to add them): 2026-02-28, 2026-02-27');
    expect(lines).toHaveLength(4);
  });
});
