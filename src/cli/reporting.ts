/**
 * What a computing command (run, backfill, scheduled) reports besides stdout once it ends, whatever
 * its outcome: the JSON summary to `--summary-file` (Airflow reads `/airflow/xcom/return.json`) and
 * run metrics to `--pushgateway`. Options are validated before any work starts (exit 2), so a typo
 * is not discovered after an hour of computing.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DayOutcome, Stage } from '../run-results.js';
import { defaultOf } from '../config/options.js';
import { type RawOptions, isHttpUrl } from '../config/resolve.js';
import { ExitCode, UsageError } from '../errors.js';
import { type Logger, sanitizeForLog } from '../observability/log.js';
import { type PushTarget, redactedUrl } from '../observability/push-target.js';

/** Gives up on the Pushgateway after this long: monitoring must not hold a finished job. */
const PUSH_TIMEOUT_MS = 10_000;

/** Where a command's summary and metrics go, and what it computed. */
export interface Reporting {
  command: string;
  stages: Stage[];
  summaryFile: string | undefined;
  push: PushTarget | undefined;
  /** Filled in by the command once its days are computed. */
  outcomes: DayOutcome[];
  /** The command's logger (same run id), once its context exists. */
  logger?: Logger;
  /** `--fail-on-alert`: exit 4 once everything is committed when an alert fired (SPEC §8). */
  failOnAlert: boolean;
}

/** Validates `--summary-file` and `--pushgateway` of a computing command. */
export function reportingOf(raw: RawOptions, command: string, stages: Stage[]): Reporting {
  const summaryFile = raw['summary-file'] as string | undefined;
  if (summaryFile !== undefined) {
    const dir = path.dirname(path.resolve(summaryFile));
    let writable = true;
    try {
      fs.accessSync(dir, fs.constants.W_OK);
      writable = fs.statSync(dir).isDirectory();
    } catch {
      writable = false;
    }
    if (!writable) throw new UsageError(`--summary-file ${summaryFile}: folder ${dir} does not exist or is not writable; create it or pick another path`, { option: '--summary-file' });
  }
  const url = raw.pushgateway as string | undefined;
  let push: PushTarget | undefined;
  if (url !== undefined) {
    if (!isHttpUrl(url)) {
      throw new UsageError(`--pushgateway must be an http(s) URL such as http://pushgateway:9091, got ${JSON.stringify(redactedUrl(url))}`, { option: '--pushgateway' });
    }
    const job = (raw['pushgateway-job'] as string | undefined) ?? defaultOf<string>('pushgateway-job');
    // The job name is a path segment and a label value: keep it to Prometheus' label-value-safe set.
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(job)) {
      throw new UsageError(`--pushgateway-job must start with a letter or _ and hold only letters, digits, _ . -, got ${JSON.stringify(job)}`, { option: '--pushgateway-job' });
    }
    push = { url, job, timeoutMs: PUSH_TIMEOUT_MS };
  } else if (raw['pushgateway-job'] !== undefined) {
    throw new UsageError('--pushgateway-job needs --pushgateway URL', { option: '--pushgateway-job' });
  }
  return { command, stages, summaryFile, push, outcomes: [], failOnAlert: raw['fail-on-alert'] === true };
}

/** The shard of a backfill: `--shard-index/--shard-count`, the index defaulting to JOB_COMPLETION_INDEX. */
export function shardOf(raw: RawOptions, env: NodeJS.ProcessEnv): { index: number; count: number } | undefined {
  const count = raw['shard-count'] as number | undefined;
  let index = raw['shard-index'] as number | undefined;
  if (count === undefined) {
    if (index !== undefined) throw new UsageError('--shard-index needs --shard-count N', { option: '--shard-index' });
    return undefined;
  }
  if (count < 1 || count > 10_000) throw new UsageError(`--shard-count must be from 1 to 10000, got ${count}`, { option: '--shard-count' });
  if (index === undefined) {
    const fromEnv = env.JOB_COMPLETION_INDEX;
    if (fromEnv === undefined || !/^\d+$/.test(fromEnv)) {
      throw new UsageError(
        `--shard-count ${count} needs --shard-index I, or JOB_COMPLETION_INDEX set by a Kubernetes Indexed Job${fromEnv === undefined ? '' : ` (got ${JSON.stringify(fromEnv)})`}`,
        { option: '--shard-index' },
      );
    }
    index = Number(fromEnv);
  }
  if (index < 0 || index >= count) throw new UsageError(`--shard-index must be from 0 to ${count - 1} (--shard-count ${count}), got ${index}`, { option: '--shard-index' });
  return { index, count };
}

/** Writes a file through a temporary sibling and a rename, so a reader never sees half of it; the temporary is removed on failure. */
export function writeAtomically(file: string, text: string): void {
  const temp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}

/**
 * Writes the summary file and pushes the run metrics. A summary that cannot be written turns a
 * success into exit 1 (the scheduler would read a stale or missing summary); a failed push is
 * only logged, since the computed result stands.
 */
export async function finishReporting(
  reporting: Reporting,
  end: { exitCode: number; summary: unknown; startedAtMs: number; fallbackLogger: () => Logger },
): Promise<number> {
  let exitCode = end.exitCode;
  const logger = reporting.logger ?? end.fallbackLogger();
  if (reporting.summaryFile !== undefined && end.summary !== undefined) {
    try {
      writeAtomically(reporting.summaryFile, `${JSON.stringify(end.summary)}\n`);
    } catch (error) {
      const message = sanitizeForLog(`--summary-file ${reporting.summaryFile}: cannot write the summary: ${(error as Error).message}`);
      logger.error({ event: 'summary_file_failed', code: 'E_STORAGE', message }, message);
      if (exitCode === ExitCode.ok) exitCode = ExitCode.failed;
    }
  }
  if (reporting.push !== undefined) {
    const finishedAtMs = Date.now();
    // Loaded here, not at the top: prom-client is only needed when a push happens.
    const { pushRunMetrics } = await import('../observability/pushgateway.js');
    const failures = await pushRunMetrics(reporting.push, {
      command: reporting.command,
      stages: reporting.stages,
      outcomes: reporting.outcomes,
      exitCode,
      durationSeconds: (finishedAtMs - end.startedAtMs) / 1000,
      finishedAtMs,
    });
    for (const failure of failures) logger.warn({ event: 'pushgateway_failed', message: sanitizeForLog(failure) }, 'run metrics not pushed; the run result stands');
    if (failures.length === 0) logger.info({ event: 'pushgateway_pushed', url: redactedUrl(reporting.push.url), stages: reporting.stages }, 'run metrics pushed');
  }
  return exitCode;
}
