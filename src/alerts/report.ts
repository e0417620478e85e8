/**
 * How a command's alerts reach people and schedulers: lines of the human summary, and exit 4 with
 * `--fail-on-alert` once every day is committed (SPEC §6, §8).
 */
import type { DayOutcome } from '../run-results.js';
import { ExitCode } from '../errors.js';
import type { DayAlerts } from './step.js';

/** Alerts fired over the computed (or already committed) days of a command. */
export function alertsFired(outcomes: readonly DayOutcome[]): number {
  return outcomes.reduce((n, o) => n + ('result' in o ? (o.result.alerts?.fired ?? 0) : 0), 0);
}

/**
 * The exit code once alerts are counted: 4 when `--fail-on-alert` is set, an alert fired and the
 * command otherwise succeeded; a failure (1), bad usage (2), not ready (3) or a signal keeps its code.
 */
export function alertExitCode(exitCode: number, outcomes: readonly DayOutcome[], failOnAlert: boolean): number {
  if (!failOnAlert || exitCode !== ExitCode.ok) return exitCode;
  return alertsFired(outcomes) > 0 ? ExitCode.alert : exitCode;
}

/** The lines of a day's human summary about its alerts. */
export function describeAlerts(alerts: DayAlerts | undefined): string[] {
  if (alerts === undefined) return [];
  const skipped = Object.entries(alerts.skipped).filter(([, n]) => n > 0).map(([reason, n]) => `${n} ${reason.replace(/_/g, ' ')}`);
  const withoutAges = alerts.baseline_days_without_label_ages;
  return [
    `  alerts: ${alerts.fired} fired, ${alerts.compared} slice(s) compared${skipped.length > 0 ? `, skipped: ${skipped.join(', ')}` : ''} (${alerts.baseline_days_found} baseline day(s) found) — ${alerts.manifest}`,
    ...(withoutAges.length > 0
      ? [`  ${withoutAges.length} baseline day(s) hold no label-age records and do not count for this preliminary (metrics v1, or finals written before label ages; rerun those finals with this version to add them): ${withoutAges.join(', ')}`]
      : []),
    ...alerts.alerts.map((a) => `    ALERT ${a.message}`),
  ];
}
