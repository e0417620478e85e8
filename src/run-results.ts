/**
 * The results of runs, shared by the layers that report them (observability/, cli/, alerts/) and
 * the pipeline that makes them: a module below pipeline/ and jobs/, so a reporter never imports the
 * code that computes a day to name what it returns.
 */
import type { DayAlerts } from './alerts/step.js';
import type { Stage } from './join/records.js';

export type { Stage } from './join/records.js';

/** The summary of one day's run, printed on stdout and returned to backfill/scheduled. */
export interface DayResult {
  date: string;
  stage: Stage;
  status: 'done' | 'already_done';
  as_of: string;
  labels_through: string;
  prediction_objects: number;
  label_objects: number;
  skipped_objects: number;
  predictions_read: number;
  predictions_kept: number;
  labeled: number;
  label_coverage: number | null;
  curated_files: number;
  metrics_records: number;
  curated_manifest: string;
  metrics_manifest: string;
  duration_s: number;
  /** The day's alerts (SPEC §8), when the run computes them. */
  alerts?: DayAlerts;
}

/** One day's outcome. */
export type DayOutcome =
  | { date: string; stage: Stage; status: 'done' | 'already_done'; result: DayResult }
  | { date: string; stage: Stage; status: 'not_ready' | 'failed'; code: string; error: string };
