/**
 * Builds what a job needs from validated config: the four stores, the logger and the progress
 * line. The only place that decides between a terminal and a machine on the other end of stderr.
 */
import { randomUUID } from 'node:crypto';
import type { JobConfig } from '../config/resolve.js';
import { type LogFormat, createLogger, type Logger } from '../observability/log.js';
import { Progress } from '../observability/progress.js';
import type { RunContext, Stores } from '../pipeline/daily.js';
import { openStore } from '../storage/open.js';
import { JOB_VERSION } from '../package-root.js';
import { leaseTimingOf } from '../pipeline/lease-policy.js';


/** Opens the four dataset stores (sharing S3 clients). */
export function openStores(config: JobConfig): Stores {
  return {
    predictions: openStore(config.predictions, config.s3, '--predictions'),
    labels: openStore(config.labels, config.s3, '--labels'),
    curated: openStore(config.curated, config.s3, '--curated'),
    metrics: openStore(config.metrics, config.s3, '--metrics'),
    ...(config.alertsDataset === undefined ? {} : { alerts: openStore(config.alertsDataset, config.s3, '--alerts-dataset') }),
  };
}

/** A logger for a command, with a run id on every line; clears the progress line before each log line. */
export function commandLogger(config: Pick<JobConfig, 'logLevel' | 'logFormat'>, command: string, progress?: { clearLine(): void }): Logger {
  return createLogger(config.logLevel, { run_id: randomUUID(), command, job_version: JOB_VERSION }, progress === undefined ? undefined : () => progress.clearLine(), logFormatOf(config));
}

/** The log format: as asked, else pretty for a person at a terminal and JSON lines for anything else (SPEC §6). */
export function logFormatOf(config: Pick<JobConfig, 'logFormat'>): LogFormat {
  return config.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json');
}

/** The full context of a job command. */
export function createRunContext(config: JobConfig, command: string, signal?: AbortSignal): RunContext {
  const terminal = process.stderr.isTTY ? process.stderr : undefined;
  // The progress line and the logger reference each other: the logger clears the line before writing.
  const holder: { progress?: Progress } = {};
  const logger = commandLogger(config, command, { clearLine: () => holder.progress?.clearLine() });
  holder.progress = new Progress(logger, terminal);
  return {
    config,
    stores: openStores(config),
    logger,
    progress: holder.progress,
    jobVersion: JOB_VERSION,
    leaseTiming: leaseTimingOf(config.leaseTtlMs),
    ...(signal === undefined ? {} : { signal }),
  };
}
