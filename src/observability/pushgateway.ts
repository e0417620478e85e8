/**
 * Run metrics pushed to a Prometheus Pushgateway at the end of a command, the way Prometheus
 * monitors batch jobs ("Pushgateway: when to use it", prometheus.io/docs/practices/pushing): one
 * group per (job, command, stage), pushed with POST so that a failed run replaces its figures but
 * keeps the group's `last_success_timestamp_seconds` from the last good run.
 */
import { Gauge, Pushgateway, Registry } from 'prom-client';
import type { DayOutcome, DayResult, Stage } from '../run-results.js';
import { ALERT_METRICS } from '../alerts/defaults.js';
import { SKIP_REASONS } from '../alerts/policy.js';
import { type PushTarget, redactedUrl } from './push-target.js';

/** What a finished command did, per stage it covered. */
export interface RunFigures {
  command: string;
  /** The stages the command computes (scheduled: both), each pushed as its own group. */
  stages: readonly Stage[];
  /** Day outcomes; empty when the command failed before computing any day. */
  outcomes: readonly DayOutcome[];
  exitCode: number;
  durationSeconds: number;
  /** When the command finished, in ms since the epoch. */
  finishedAtMs: number;
}

const dayStatuses = ['done', 'already_done', 'not_ready', 'failed'] as const;

/** Each summed figure and the count of a computed day's result that it sums. */
const summedCounts = {
  predictionObjects: 'prediction_objects',
  labelObjects: 'label_objects',
  skippedObjects: 'skipped_objects',
  predictionsRead: 'predictions_read',
  predictionsKept: 'predictions_kept',
  labeled: 'labeled',
  curatedFiles: 'curated_files',
  metricsRecords: 'metrics_records',
} as const satisfies Record<string, keyof DayResult>;
const summedFields = Object.keys(summedCounts) as (keyof typeof summedCounts)[];

/** The sums over one stage's outcomes that the push reports. */
export type StageFigures = Record<keyof typeof summedCounts, number> & {
  days: Record<(typeof dayStatuses)[number], number>;
  /** True when the command exited 0 and computed or confirmed at least one day of this stage. */
  succeeded: boolean;
  /** Alerts of the computed or confirmed days by metric, and slices not compared by reason (SPEC §8). */
  alerts: Record<(typeof ALERT_METRICS)[number], number>;
  alertSlicesSkipped: Record<(typeof SKIP_REASONS)[number], number>;
};

/** Sums one stage's outcomes (pure, so the figures are testable without a gateway). */
export function stageFigures(run: RunFigures, stage: Stage): StageFigures {
  const figures = {
    days: { done: 0, already_done: 0, not_ready: 0, failed: 0 },
    ...(Object.fromEntries(summedFields.map((field) => [field, 0])) as Record<keyof typeof summedCounts, number>),
    succeeded: false,
    alerts: Object.fromEntries(ALERT_METRICS.map((m) => [m, 0])) as StageFigures['alerts'],
    alertSlicesSkipped: Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as StageFigures['alertSlicesSkipped'],
  };
  for (const outcome of run.outcomes) {
    if (outcome.stage !== stage) continue;
    figures.days[outcome.status] += 1;
    if (!('result' in outcome)) continue;
    // An already committed day's alerts still stand: they are pushed like those of a computed day.
    for (const alert of outcome.result.alerts?.alerts ?? []) figures.alerts[alert.metric] += 1;
    for (const reason of SKIP_REASONS) figures.alertSlicesSkipped[reason] += outcome.result.alerts?.skipped[reason] ?? 0;
    if (outcome.status !== 'done') continue;
    for (const field of summedFields) figures[field] += outcome.result[summedCounts[field]];
  }
  figures.succeeded = run.exitCode === 0 && figures.days.done + figures.days.already_done > 0;
  return figures;
}

/** The registry of one stage's group, in the Prometheus text format the gateway receives. */
export function stageRegistry(run: RunFigures, stage: Stage): Registry {
  const registry = new Registry();
  const figures = stageFigures(run, stage);
  const gauge = (name: string, help: string, value: number): void => {
    new Gauge({ name: `model_metrics_${name}`, help, registers: [registry] }).set(value);
  };
  gauge('run_duration_seconds', 'Wall time of the last run of this command.', run.durationSeconds);
  gauge('run_exit_code', 'Exit code of the last run (0 done, 1 failed, 2 bad usage, 3 not ready, 4 alert with --fail-on-alert, 143/130 signal).', run.exitCode);
  gauge('last_run_timestamp_seconds', 'When the last run finished, in seconds since the epoch.', run.finishedAtMs / 1000);
  const days = new Gauge({ name: 'model_metrics_days', help: 'Days of the last run by outcome.', labelNames: ['status'], registers: [registry] });
  for (const status of dayStatuses) days.set({ status }, figures.days[status]);
  gauge('input_objects', 'Prediction and label objects read by the last run (days computed, not already done).', figures.predictionObjects + figures.labelObjects);
  gauge('skipped_objects', 'Corrupt input objects left out by the last run (--on-corrupt skip).', figures.skippedObjects);
  gauge('predictions_read', 'Prediction records read by the last run.', figures.predictionsRead);
  gauge('predictions_kept', 'Predictions kept after dedupe and validity rules.', figures.predictionsKept);
  gauge('labeled', 'Kept predictions that found a label.', figures.labeled);
  gauge('curated_files', 'Curated part files published by the last run.', figures.curatedFiles);
  gauge('metrics_records', 'Metrics records published by the last run.', figures.metricsRecords);
  const alerts = new Gauge({ name: 'model_metrics_alerts', help: 'Alerts (SPEC §8) of the days of the last run, by metric.', labelNames: ['metric'], registers: [registry] });
  for (const metric of ALERT_METRICS) alerts.set({ metric }, figures.alerts[metric]);
  const skipped = new Gauge({ name: 'model_metrics_alert_slices_skipped', help: 'Slices of the days of the last run not compared with their baseline, by reason.', labelNames: ['reason'], registers: [registry] });
  for (const reason of SKIP_REASONS) skipped.set({ reason }, figures.alertSlicesSkipped[reason]);
  // Only a good run sets it; POST leaves the previous value in the group when a run fails.
  if (figures.succeeded) gauge('last_success_timestamp_seconds', 'When a run last completed this stage, in seconds since the epoch.', run.finishedAtMs / 1000);
  return registry;
}

/** Pushes one group per stage; resolves with one error message per failed push (none when all went through). */
export async function pushRunMetrics(target: PushTarget, run: RunFigures): Promise<string[]> {
  const failures: string[] = [];
  for (const stage of run.stages) {
    const gateway = new Pushgateway(target.url, { timeout: target.timeoutMs }, stageRegistry(run, stage));
    try {
      await gateway.pushAdd({ jobName: target.job, groupings: { command: run.command, stage } });
    } catch (error) {
      failures.push(`push of stage ${stage} to ${redactedUrl(target.url)} failed: ${(error as Error).message}`);
    }
  }
  return failures;
}
