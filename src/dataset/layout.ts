/**
 * Key layout of the four datasets (SPEC §1), relative to each dataset's root.
 */
import type { Stage } from '../join/records.js';

/** The commit point of an output partition (SPEC §1). */
export const SUCCESS_FILE = '_SUCCESS';

/**
 * Where a run writes its data files before commit, inside each output dataset: hidden (`_`) from
 * readers and from input listings, one folder per run.
 */
export const STAGING_DIR = '_staging/';

/** The runs of one output partition keep their staged files and their lease here: `_staging/stage=…/dt=…/`. */
export function stagingPartition(stage: Stage, date: string): string {
  return `${STAGING_DIR}${outputPartition(stage, date)}`;
}

/** Where one run stages its files before commit: `_staging/stage=…/dt=…/<run id>/`. */
export function runStagingPrefix(stage: Stage, date: string, runId: string): string {
  return `${stagingPartition(stage, date)}${runId}/`;
}

/** The run lease of an output partition (issue 5): one run of a stage and date at a time. */
export function leaseKey(stage: Stage, date: string): string {
  return `${stagingPartition(stage, date)}_lease.json`;
}

/** The name of the metrics file of a partition. */
export const METRICS_FILE = 'metrics.avro';

/** The name of the alerts file of a partition (SPEC §8); header-only when no alert fired. */
export const ALERTS_FILE = 'alerts.avro';

/** Prefix of an input partition: `dt=YYYY-MM-DD/` (sub-partitions below it are included). */
export function inputPartition(date: string): string {
  return `dt=${date}/`;
}

/** Prefix of an output partition: `stage=preliminary/dt=YYYY-MM-DD/`. */
export function outputPartition(stage: Stage, date: string): string {
  return `stage=${stage}/dt=${date}/`;
}

/** Key of curated part `index` in a partition, `part-00000.avro` onwards. */
export function curatedPartKey(stage: Stage, date: string, index: number): string {
  return `${outputPartition(stage, date)}part-${String(index).padStart(5, '0')}.avro`;
}

/**
 * Only objects ending in `.avro` are inputs; `_SUCCESS`, `.crc` and temp files are ignored (SPEC §1).
 * Like Hadoop and Spark, any path segment starting with `_` or `.` hides what is below it
 * (`_temporary/` of an in-progress Spark write, `.staging/`, `.part-0.avro.tmp`).
 */
export function isInputObject(key: string): boolean {
  return key.endsWith('.avro') && !key.split('/').some((segment) => segment.startsWith('.') || segment.startsWith('_'));
}
